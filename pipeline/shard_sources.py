"""Where input shards live, named as WebDataset users name them: local paths and globs; brace ranges
(``shards-{000000..000009}.tar``); URLs of any filesystem pyarrow knows (``file://``, ``s3://``, ``gs://``,
``hdfs://``), read with random access straight from the object store; URLs of the other filesystems fsspec
knows (``https://``, ``hf://``, ...), streamed; and ``pipe:COMMAND``, the command's standard output."""

from __future__ import annotations

import fnmatch
import glob
import io
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import BinaryIO

from braceexpand import braceexpand

GLOB_CHARACTERS = "*?["
PIPE = "pipe:"
PYARROW_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs")


def is_pipe(location: str) -> bool:
    return location.startswith(PIPE)


def is_url(location: str) -> bool:
    return "://" in location and not is_pipe(location)


def uses_pyarrow(location: str) -> bool:
    return location.split("://", 1)[0] in PYARROW_SCHEMES


def random_access(location: str) -> bool:
    """Whether ``open_shard`` gives a seekable stream (local paths and pyarrow URLs), not a read-once one."""
    return not is_pipe(location) and (not is_url(location) or uses_pyarrow(location))


def open_shard(location: str) -> BinaryIO:
    """A binary stream of the shard: seekable for local paths and pyarrow URLs, read-once for the others."""
    if is_pipe(location):
        return PipeStream(location[len(PIPE) :])
    if not is_url(location):
        return open(location, "rb")
    if uses_pyarrow(location):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(location)
        return filesystem.open_input_file(path)
    filesystem, path = fsspec_filesystem(location)
    return filesystem.open(path, "rb", block_size=0)  # block size 0: one streamed request, no ranges


def fsspec_filesystem(location: str):
    """(fsspec filesystem, path) for a URL; a missing optional package is a clear error."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except (ImportError, ValueError) as error:
        raise FileNotFoundError(f"cannot read {location}: {error}") from None


class PipeStream(io.RawIOBase):
    """The standard output of a shell command (webdataset's ``pipe:``). Closing it after the end waits for the
    command, and a command that failed is an error with the end of what it wrote to standard error; closing it
    before the end (a reader that stopped early) ends the command instead."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, shell=True, stdout=subprocess.PIPE, stderr=self.errors)
        self.at_end = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.process.stdout.readinto(buffer)
        self.at_end = self.at_end or count == 0
        return count

    def close(self) -> None:
        if self.closed:
            return
        if not self.at_end:
            self.process.kill()
        self.process.stdout.close()
        status = self.process.wait()
        self.errors.seek(0)
        said = self.errors.read()[-300:].decode(errors="replace").strip()
        self.errors.close()
        super().close()
        if status != 0 and self.at_end:
            raise OSError(f"pipe command {self.command!r} exited with status {status}: {said}")


def shard_exists(location: str) -> bool:
    """Whether the shard file is there (a local path or a URL; a pipe is taken on trust)."""
    if is_pipe(location):
        return True
    if not is_url(location):
        return os.path.isfile(location)
    if not uses_pyarrow(location):
        filesystem, path = fsspec_filesystem(location)
        return filesystem.isfile(path)
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(location)
    return filesystem.get_file_info(path).type == fs.FileType.File


def file_name(location: str) -> str:
    """The shard's file name: the last path part of a path or URL (without a query), of a pipe the last
    ``.tar`` word of its command (``pipe:curl -s https://host/a-000001.tar`` -> ``a-000001.tar``)."""
    if is_pipe(location):
        words = [word for word in shlex.split(location[len(PIPE) :]) if ".tar" in word]
        location = words[-1] if words else location[len(PIPE) :]
    return location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def relocated(location: str, folder: str) -> str:
    """Where a shard is after a move into ``folder`` (a path or URL), under the same name; itself without one."""
    return f"{folder.rstrip('/')}/{file_name(location)}" if folder else location


def list_shards(location: str) -> list[str]:
    """The shard files a location names: brace ranges expanded, then a directory's ``*.tar``, a glob's matches,
    or the file itself; a pipe is itself."""
    if is_pipe(location):
        return [location]
    return [shard for expanded in braceexpand(location) for shard in _list_one(expanded)]


def _list_one(location: str) -> list[str]:
    if not is_url(location):
        return _list_local(location)
    return _list_url(location) if uses_pyarrow(location) else _list_fsspec(location)


def _list_local(location: str) -> list[str]:
    if os.path.isdir(location):
        found = sorted(str(p) for p in Path(location).glob("*.tar"))
        if not found:
            raise FileNotFoundError(f"no .tar shards in directory {location}")
    elif any(char in location for char in GLOB_CHARACTERS):
        found = sorted(glob.glob(location))
        if not found:
            raise FileNotFoundError(f"glob {location!r} matches no files")
    elif os.path.exists(location):
        found = [location]
    else:
        raise FileNotFoundError(f"input {location} does not exist")
    return [os.path.abspath(p) for p in found]


def _list_fsspec(location: str) -> list[str]:
    """A glob (where the filesystem can list, as hf:// can) or one file (https:// lists nothing)."""
    filesystem, path = fsspec_filesystem(location)
    if any(char in path for char in GLOB_CHARACTERS):
        found = sorted(filesystem.glob(path))
        if not found:
            raise FileNotFoundError(f"{location} matches no files")
        return [filesystem.unstrip_protocol(name) for name in found]
    if not filesystem.isfile(path):
        raise FileNotFoundError(f"input {location} does not exist")
    return [location]


def _list_url(location: str) -> list[str]:
    from pyarrow import fs

    scheme = location.split("://", 1)[0]
    filesystem, path = fs.FileSystem.from_uri(location)
    pattern = None
    if any(char in path for char in GLOB_CHARACTERS):
        pattern, path = path, path.rsplit("/", 1)[0]
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.File and pattern is None:
        return [location]
    if info.type != fs.FileType.Directory:
        raise FileNotFoundError(f"input {location} does not exist")
    entries = filesystem.get_file_info(fs.FileSelector(path))
    names = sorted(e.path for e in entries if e.type == fs.FileType.File)
    found = [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else [n for n in names if n.endswith(".tar")]
    if not found:
        raise FileNotFoundError(f"{location} names no .tar shards")
    return [f"{scheme}://{name}" for name in found]
