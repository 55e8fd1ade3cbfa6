"""Where a run's outputs live: a local folder, or any filesystem pyarrow knows (``file://``, ``s3://``, ``gs://``,
``hdfs://``), behind the few operations the run needs.

Readers must never see a partial file. Filesystems with an atomic rename (local disks, HDFS) get a hidden
temporary file beside the target, renamed into place. Object stores have no rename, but an object
appears only once its upload completes, whole: there the finished file is uploaded straight to its
final name. Either way the shard's manifest entry is written last, so "done" is never announced early.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from pyarrow import fs

from motionpipe.pipeline.shard_sources import is_url

RENAMING_FILESYSTEMS = ("local", "hdfs")
SCRATCH_FOLDER = "motionpipe-scratch"  # in the machine's temp dir, one per user


class RunStorage:
    """A run folder on a pyarrow filesystem; paths are strings relative to the folder."""

    def __init__(
        self, filesystem: fs.FileSystem, root: str, atomic_rename: bool | None = None, scheme: str = ""
    ) -> None:
        self.filesystem = filesystem
        self.root = root.rstrip("/") or "/"
        self.scheme = scheme  # 's3' for s3://..., '' for a local path
        self.atomic_rename = filesystem.type_name in RENAMING_FILESYSTEMS if atomic_rename is None else atomic_rename

    @classmethod
    def at(cls, location: str | Path) -> RunStorage:
        """The storage for ``OUT`` as the user wrote it (a path or a URL)."""
        if is_url(str(location)):
            filesystem, root = fs.FileSystem.from_uri(str(location))
            return cls(filesystem, root, scheme=str(location).split("://", 1)[0])
        return cls(fs.LocalFileSystem(), os.path.abspath(location))

    def full(self, relative: str) -> str:
        """The path on the filesystem."""
        return f"{self.root}/{relative}" if relative else self.root

    def url(self, relative: str) -> str:
        """What a user or ``open_shard`` names the file by: a local path, or the URL."""
        return f"{self.scheme}://{self.full(relative)}" if self.scheme else self.full(relative)

    def exists(self, relative: str) -> bool:
        return self.filesystem.get_file_info(self.full(relative)).type != fs.FileType.NotFound

    def require_folder(self) -> None:
        """Raise NotADirectoryError when the root is a file, which a run should say before it starts, not at its
        first write."""
        if self.filesystem.get_file_info(self.root).type == fs.FileType.File:
            raise NotADirectoryError(f"{self.url('')} is a file, not a folder")

    def is_empty(self) -> bool:
        """Whether no file or folder is under the root (a root that does not exist is empty)."""
        self.require_folder()
        return not self.filesystem.get_file_info(fs.FileSelector(self.root, allow_not_found=True))

    def read_bytes(self, relative: str) -> bytes:
        with self.filesystem.open_input_stream(self.full(relative)) as stream:
            return stream.read()

    def list(self, folder: str, suffix: str) -> list[str]:
        """Names (not paths) in ``folder`` ending in ``suffix``, sorted; hidden temporaries are not listed."""
        selector = fs.FileSelector(self.full(folder), allow_not_found=True)
        names = [info.base_name for info in self.filesystem.get_file_info(selector) if info.type == fs.FileType.File]
        return sorted(name for name in names if name.endswith(suffix) and not name.startswith("."))

    def delete(self, relative: str) -> None:
        if self.exists(relative):
            self.filesystem.delete_file(self.full(relative))

    def delete_folder(self, relative: str) -> None:
        """``relative`` and everything under it, if it is there."""
        if self.exists(relative):
            self.filesystem.delete_dir(self.full(relative))

    def write_bytes(self, relative: str, data: bytes) -> None:
        self.write(relative, lambda path: Path(path).write_bytes(data))

    def write(self, relative: str, produce: Callable[[str], None]) -> None:
        """``produce(local_path)`` writes the file; it then appears at ``relative`` all at once."""
        staging = self.staging_path(relative)
        try:
            produce(staging)
            self.commit(staging, relative)
        finally:
            self.discard(staging)

    def staging_path(self, relative: str) -> str:
        """A local file to write ``relative`` into before ``commit``: a hidden temporary beside the target on a
        local disk (so committing is a rename), a scratch file elsewhere."""
        if self.filesystem.type_name == "local":
            folder, _, name = self.full(relative).rpartition("/")
            os.makedirs(folder, exist_ok=True)
            return f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
        return scratch_file()

    def local_staging_folder(self) -> str | None:
        """Where to stage many files before ``commit``: the root itself on a local disk (committing is then a
        rename), the system's temporary folder (None) elsewhere."""
        if self.filesystem.type_name != "local":
            return None
        os.makedirs(self.root, exist_ok=True)
        return self.root

    def names(self) -> list[str]:
        """Names of the files and folders directly under the root, hidden ones too."""
        selector = fs.FileSelector(self.root, allow_not_found=True)
        return sorted(info.base_name for info in self.filesystem.get_file_info(selector))

    def commit(self, staging: str, relative: str) -> None:
        """Make the finished staging file visible at ``relative``, whole."""
        target = self.full(relative)
        if self.filesystem.type_name == "local":
            with open(staging, "rb") as handle:
                os.fsync(handle.fileno())
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(staging, target)
            return
        folder, _, name = target.rpartition("/")
        self.filesystem.create_dir(folder, recursive=True)
        if self.atomic_rename:
            temporary = f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
            self.upload(staging, temporary)
            self.filesystem.move(temporary, target)
        else:  # an object store: the upload is invisible until it completes
            self.upload(staging, target)

    @staticmethod
    def discard(staging: str) -> None:
        Path(staging).unlink(missing_ok=True)

    def upload(self, local: str, target: str) -> None:
        with open(local, "rb") as source, self.filesystem.open_output_stream(target) as sink:
            while chunk := source.read(1 << 22):
                sink.write(chunk)

    def remove_stale_temporaries(self, folders: list[str]) -> None:
        """Delete the hidden temporary files that killed writers left behind."""
        for folder in folders:
            selector = fs.FileSelector(self.full(folder), allow_not_found=True)
            for info in self.filesystem.get_file_info(selector):
                if info.base_name.startswith(".") and info.base_name.endswith(".tmp"):
                    self.filesystem.delete_file(info.path)


def scratch_file() -> str:
    """A local file to stage an upload in, named by this process's id. A worker killed mid-shard never deletes
    its own, so the files of processes that are gone are deleted first: however often workers die, a node's
    disk does not fill up with half-written shards."""
    folder = Path(tempfile.gettempdir()) / f"{SCRATCH_FOLDER}-{os.getuid()}"
    folder.mkdir(exist_ok=True)
    for stale in folder.iterdir():
        owner = stale.name.split("-", 1)[0]
        if owner.isdigit() and not process_exists(int(owner)):
            stale.unlink(missing_ok=True)
    return str(folder / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True
