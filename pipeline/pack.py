"""``motionpipe pack``: a folder of video files as WebDataset shards, the input every other command reads.

Each video becomes one sample keyed by its path under the folder (without its extension; dots in it become
``_``, as WebDataset reads everything after a name's first dot as the extension), with the files beside it
that share its stem (``clip.txt``, ``clip.json``: captions, metadata) as its other members. Files are taken
in sorted order, so packing the same folder again gives the same shards; each shard appears whole (written
under a hidden name, then renamed).
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from motionpipe.stages.decode import VIDEO_EXTENSIONS

PACKED_FOLDER = "packed"  # annotate OUT/packed/NAME: the shards of an input folder of videos
PACKED_MARKER = ".packed"  # written once a folder's packing is complete


def is_video(path: Path) -> bool:
    return path.suffix[1:].lower() in VIDEO_EXTENSIONS


def video_files(folder: str | Path) -> list[Path]:
    """The folder's video files, at any depth, in sorted order (hidden files and folders skipped)."""
    root = Path(folder)
    return sorted(
        path
        for path in root.rglob("*")
        if is_video(path) and path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def holds_videos(folder: str | Path) -> bool:
    """A local folder with video files and no shards: what annotate packs before it reads it."""
    return os.path.isdir(folder) and not any(Path(folder).glob("*.tar")) and bool(video_files(folder))


def sample_key(video: Path, folder: Path) -> str:
    """The sample key of a video: its path under ``folder`` without the extension, dots made ``_``."""
    relative = video.relative_to(folder).with_suffix("")
    return relative.as_posix().replace(".", "_")


def sample_members(video: Path) -> dict[str, bytes]:
    """Extension -> bytes: the video, and the files beside it sharing its stem (other videos excepted)."""
    members = {video.suffix[1:].lower(): video.read_bytes()}
    for sidecar in video.parent.glob(f"{glob.escape(video.stem)}.*"):
        extension = sidecar.name[len(video.stem) + 1 :].lower()
        if sidecar.is_file() and not is_video(sidecar):
            members.setdefault(extension, sidecar.read_bytes())
    return members


def pack_videos(
    videos_dir: str | Path,
    shards_dir: str | Path,
    maxcount: int = 1000,
    on_video: Callable[[], None] | None = None,
    prefix: str = "videos",
) -> list[Path]:
    """Write the folder's videos as ``shards_dir/PREFIX-NNNNNN.tar``, ``maxcount`` a shard -> the shards.

    Refuses a destination that already holds shards (packing into it would mix two sets), two videos whose keys
    collide, and a folder without videos."""
    import webdataset as wds

    if maxcount < 1:
        raise ValueError(f"maxcount must be >= 1, got {maxcount}")
    source, target = Path(videos_dir), Path(shards_dir)
    videos = video_files(source)
    if not videos:
        raise FileNotFoundError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {source}")
    keys = [sample_key(video, source) for video in videos]
    clashes = sorted({key for key in keys if keys.count(key) > 1})
    if clashes:
        raise ValueError(f"videos of {source} share sample keys {clashes[:5]} (same path but for the extension)")
    if target.is_dir() and any(target.glob("*.tar")):
        raise FileExistsError(f"{target} already holds shards: choose an empty folder")
    target.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def publish(staged: str) -> None:
        final = target / Path(staged).name[1:]  # staged as a hidden file: the name without its dot
        os.replace(staged, final)
        written.append(final)

    pattern = str(target / f".{prefix}-%06d.tar")
    # mtime 0: the same folder packs to the same bytes (webdataset stamps members with the time of writing)
    with wds.ShardWriter(pattern, maxcount=maxcount, post=publish, verbose=0, mtime=0) as writer:
        for video, key in zip(videos, keys, strict=True):
            writer.write({"__key__": key, **sample_members(video)})
            if on_video is not None:
                on_video()
    return written


def packed_inputs(inputs: list[str], out: str, on_video: Callable[[], None] | None = None) -> list[str]:
    """Annotate's inputs with each local folder of videos replaced by its shards, packed once into
    ``OUT/packed/NAME`` (a rerun reuses them; an unfinished packing is redone)."""
    found = []
    for item in inputs:
        if not holds_videos(item):
            found.append(item)
            continue
        if "://" in out:
            raise ValueError(f"{item} holds videos, not shards: pack it first (motionpipe pack {item} SHARDS_DIR)")
        source = Path(item).resolve()
        name = f"{source.name}-{hashlib.sha1(str(source).encode()).hexdigest()[:8]}"  # two folders may share a name
        folder = Path(out) / PACKED_FOLDER / name
        if not (folder / PACKED_MARKER).is_file():
            for stale in folder.glob("*.tar"):
                stale.unlink()
            pack_videos(item, folder, on_video=on_video, prefix=name)
            (folder / PACKED_MARKER).write_text(f"{source}\n")
        found.append(str(folder))
    return found
