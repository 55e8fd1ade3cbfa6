"""Stops a worker whose batch of clips runs past its deadline: a hung decoder cannot be interrupted from
Python (it holds the thread in C), but its process can be ended and the shard retried elsewhere."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_HUNG = 70  # the worker's exit status when the watchdog stops it


class BatchWatchdog:
    """``armed(clips)`` guards a block; past ``seconds_per_clip * clips`` it calls ``on_expiry`` then exits the
    process. Only for disposable worker processes (Ray actors), never for a driver."""

    def __init__(self, seconds_per_clip: float, on_expiry: Callable[[], None]) -> None:
        self.seconds_per_clip = seconds_per_clip
        self.on_expiry = on_expiry

    @contextmanager
    def armed(self, clips: int) -> Iterator[None]:
        timer = threading.Timer(self.seconds_per_clip * clips, self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _expire(self) -> None:
        try:
            self.on_expiry()
        finally:
            os._exit(EXIT_HUNG)
