"""Shards named as WebDataset users name them: brace ranges, https:// (a local HTTP server), pipe: commands."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from conftest import motionpipe, rows_by_key, write_tar

from motionpipe.pipeline.sample_data import SampleSpec, write_sample_data
from motionpipe.pipeline.shard_reader import ShardReadError, iter_samples, resolve_shards, shard_name
from motionpipe.pipeline.tar_index import TarIndex

MEMBERS = [("a.mp4", b"A" * 3000), ("a.json", b"{}"), ("b.mp4", b"B" * 7000)]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path):
    """(folder, its URL): a local HTTP server over a folder, as a CDN or the Hugging Face hub serves shards."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()


def keys_and_payloads(location: str) -> list[tuple[str, dict[str, bytes]]]:
    return [(sample.key, sample.payloads) for sample in iter_samples(location)]


def test_brace_ranges_expand_as_webdataset_expands_them(tmp_path):
    for index in range(3):
        write_tar(tmp_path / f"shards-{index:06d}.tar", MEMBERS)
    assert resolve_shards([str(tmp_path / "shards-{000000..000002}.tar")]) == [
        str(tmp_path / f"shards-{index:06d}.tar") for index in range(3)
    ]
    with pytest.raises(FileNotFoundError, match="shards-000003.tar does not exist"):
        resolve_shards([str(tmp_path / "shards-{000001..000003}.tar")])


def test_http_shards_stream_like_local_ones(served):
    folder, url = served
    local = write_tar(folder / "s-000000.tar", MEMBERS)
    assert keys_and_payloads(f"{url}/s-000000.tar") == keys_and_payloads(str(local))
    assert resolve_shards([f"{url}/s-{{000000..000000}}.tar"]) == [f"{url}/s-000000.tar"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_shards([f"{url}/s-000001.tar"])
    (folder / "cut.tar").write_bytes(local.read_bytes()[:5000])  # cut inside b.mp4
    with pytest.raises(ShardReadError, match="cut.tar"):
        list(iter_samples(f"{url}/cut.tar"))
    with pytest.raises(OSError, match="read once"):
        TarIndex(f"{url}/s-000000.tar")


def test_pipe_commands_are_read_from_their_output(tmp_path):
    local = write_tar(tmp_path / "p-000007.tar", MEMBERS)
    piped = f"pipe:cat {local}"
    assert resolve_shards([piped]) == [piped] and shard_name(piped) == "p-000007"
    assert keys_and_payloads(piped) == keys_and_payloads(str(local))
    with pytest.raises(ShardReadError, match="exited with status 1"):
        list(iter_samples(f"pipe:cat {tmp_path / 'missing.tar'}"))
    assert shard_name("pipe:curl -s -L https://host/d/train-000003.tar?download=1") == "train-000003"


def test_other_fsspec_filesystems_are_listed_by_glob_and_streamed(tmp_path):
    # memory:// stands in for hf:// and the other filesystems fsspec knows that pyarrow does not: the same path
    import fsspec

    local = write_tar(tmp_path / "m-000000.tar", MEMBERS)
    memory = fsspec.filesystem("memory")
    memory.pipe("/videos/m-000000.tar", local.read_bytes())
    memory.pipe("/videos/notes.txt", b"not a shard")
    (found,) = resolve_shards(["memory://videos/*.tar"])  # the filesystem's own spelling: memory:///videos/...
    assert found.startswith("memory://") and found.endswith("/videos/m-000000.tar")
    assert keys_and_payloads(found) == keys_and_payloads(str(local))
    with pytest.raises(FileNotFoundError, match="matches no files"):
        resolve_shards(["memory://videos/*.tgz"])


def test_a_url_of_an_unknown_filesystem_is_a_clear_error(tmp_path):
    done = motionpipe("annotate", "nosuch://bucket/train-000000.tar", str(tmp_path / "out"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot read nosuch://bucket/train-000000.tar" in done.stderr


def test_annotate_reads_https_brace_ranges_and_pipes_end_to_end(served, tmp_path):
    folder, url = served
    write_sample_data(folder / "data", shards=3, clips_per_shard=2, seed=12, spec=SampleSpec(96, 64, 24.0, 1.0))
    shards = folder / "data" / "shards"
    inputs = [f"{url}/data/shards/sample-{{000000..000001}}.tar", f"pipe:cat {shards / 'sample-000002.tar'}"]
    done = motionpipe("annotate", *inputs, str(tmp_path / "out"), "--conditions", "none")
    assert done.returncode == 0, done.stderr
    rows = rows_by_key(tmp_path / "out")
    assert len(rows) == 6 and all(row["status"] == "ok" for row in rows.values())
    assert {row["shard"] for row in rows.values()} == {
        f"{url}/data/shards/sample-000000.tar", f"{url}/data/shards/sample-000001.tar",
        f"pipe:cat {shards / 'sample-000002.tar'}",
    }  # fmt: skip


def test_a_reader_that_stops_early_ends_the_pipe_quietly(tmp_path):
    write_tar(tmp_path / "big.tar", [(f"c{index}.mp4", b"x" * 200_000) for index in range(20)])
    samples = iter_samples(f"pipe:cat {tmp_path / 'big.tar'}")
    assert next(samples).key == "c0"
    samples.close()  # the command is killed, which is no error of the shard's
