"""Which clips killed their worker: the bookkeeping that turns a crash-looping clip into an error row.

Before a batch of clips runs, its keys are recorded as in flight in the run's ``AttemptsBook``; after it,
they are cleared. A worker that dies mid-batch (a decoder segfault, the out-of-memory killer, the hang
watchdog, a lost node) leaves them there, and the shard's next attempt counts one crash for each. Clips
with a crash run alone, so an innocent batch-mate is not blamed twice; a clip with ``max_attempts``
crashes becomes an error row without being run again.

The book lives with the driver (in its process, or on Ray in an actor on its node), not in OUT: two
records a batch would be two uploads a batch on an object store (tens of ms each, against a few hundred
ms of work), and only this run needs them. A driver that dies takes the book along, as it should: the
rerun is a new run, and a clip's crashes are counted within one run.
"""

from __future__ import annotations

from typing import Any, Protocol

CRASHED = "worker:crashed"
TIMED_OUT = "worker:timeout"


class AttemptsRecords(Protocol):
    """Where a run keeps its shards' attempt records (an ``AttemptsBook``, or a handle to one elsewhere)."""

    def read(self, shard: str) -> dict[str, Any] | None: ...

    def write(self, shard: str, record: dict[str, Any]) -> None: ...

    def remove(self, shard: str) -> None: ...


class AttemptsBook:
    """The attempt records of one run's shards, in memory."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}

    def read(self, shard: str) -> dict[str, Any] | None:
        return self.records.get(shard)

    def write(self, shard: str, record: dict[str, Any]) -> None:
        self.records[shard] = record

    def remove(self, shard: str) -> None:
        self.records.pop(shard, None)

    def forgive_in_flight(self, shard: str) -> None:
        """The shard's worker was stopped for its model server's silence, not for its clips: none is blamed."""
        if shard in self.records:
            self.records[shard]["in_flight"] = []


class ClipAttempts:
    """Crash counts of one shard's clips within one run, recorded as each batch starts and ends."""

    def __init__(self, book: AttemptsRecords, shard: str, max_attempts: int) -> None:
        self.book = book
        self.shard = shard
        self.max_attempts = max_attempts
        self.crashes: dict[str, int] = {}
        self.hung: set[str] = set()
        self.in_flight: list[str] = []
        record = book.read(shard)
        if record is not None:
            self.crashes = record["crashes"]
            self.hung = set(record["hung"])
            for key in record["in_flight"]:
                self.crashes[key] = self.crashes.get(key, 0) + 1
        self._write()

    def suspected(self, key: str) -> bool:
        """The clip was in flight when an earlier attempt's worker died."""
        return key in self.crashes

    def given_up(self, key: str) -> tuple[str, str] | None:
        """(reason, detail) of the error row for a clip that crashed its worker too often, else None."""
        count = self.crashes.get(key, 0)
        if count < self.max_attempts:
            return None
        if key in self.hung:
            return TIMED_OUT, f"the clip exceeded execution.clip_timeout_s; its worker was stopped {count} times"
        return CRASHED, f"the worker died {count} times while processing this clip"

    def start(self, keys: list[str]) -> None:
        self.in_flight = list(keys)
        self._write()

    def finish(self) -> None:
        self.in_flight = []
        self._write()

    def note_hang(self) -> None:
        """Called by the watchdog just before it stops the worker: the in-flight clips hung, not crashed."""
        self.hung.update(self.in_flight)
        self._write()

    def remove(self) -> None:
        self.book.remove(self.shard)

    def _write(self) -> None:
        self.book.write(self.shard, {"crashes": self.crashes, "hung": sorted(self.hung), "in_flight": self.in_flight})
