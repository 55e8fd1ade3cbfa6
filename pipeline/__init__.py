"""motionpipe orchestration: CLI, config, shard I/O and the engines (in-process or Ray) that run stages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("motionpipe")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
