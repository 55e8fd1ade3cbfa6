"""Which clips killed their worker: the bookkeeping that turns a crash-looping clip into an error row.

Before a batch of clips runs, its keys are written to ``OUT/attempts/SHARD.json`` as in flight; after
it, they are cleared. A worker that dies mid-batch (a decoder segfault, the out-of-memory killer, the
hang watchdog, a lost node) leaves them there, and the shard's next attempt in the same run counts one
crash for each. Clips with a crash run alone, so an innocent batch-mate is not blamed twice; a clip
with ``max_attempts`` crashes becomes an error row without being run again. A new run (another
``run_id``: the driver itself died) clears the in-flight keys without counting them.
"""

from __future__ import annotations

from pipeline.run_outputs import RunLayout

CRASHED = "worker:crashed"
TIMED_OUT = "worker:timeout"


class ClipAttempts:
    """Crash counts of one shard's clips within one run, persisted as each batch starts and ends."""

    def __init__(self, layout: RunLayout, shard: str, run_id: str, max_attempts: int) -> None:
        self.layout = layout
        self.file = layout.attempts_file(shard)
        self.run_id = run_id
        self.max_attempts = max_attempts
        self.crashes: dict[str, int] = {}
        self.hung: set[str] = set()
        self.in_flight: list[str] = []
        record = layout.read_json(self.file)
        if record is not None and record.get("run_id") == run_id:
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
        self.layout.storage.delete(self.file)

    def _write(self) -> None:
        record = {
            "run_id": self.run_id,
            "crashes": self.crashes,
            "hung": sorted(self.hung),
            "in_flight": self.in_flight,
        }
        self.layout.write_json(self.file, record)
