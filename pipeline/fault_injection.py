"""Chaos testing: make a worker crash or hang on chosen clips, to exercise the recovery paths for real.

Set ``MOTIONPIPE_INJECT_FAULTS="crash:KEY1,hang:KEY2"`` in the environment of the workers: the worker
that reaches KEY1 dies by SIGSEGV, as a decoder bug would kill it; the one that reaches KEY2 sleeps
until the hang watchdog stops it. Unset (always, outside tests), it does nothing.
"""

from __future__ import annotations

import os
import signal
import time

FAULTS_ENV = "MOTIONPIPE_INJECT_FAULTS"


def inject_faults(keys: list[str]) -> None:
    """Crash or hang here if the environment asks for it for one of ``keys``."""
    spec = os.environ.get(FAULTS_ENV)
    if not spec:
        return
    faults = dict(item.split(":", 1)[::-1] for item in spec.split(",") if ":" in item)
    for key in keys:
        if faults.get(key) == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if faults.get(key) == "hang":
            while True:
                time.sleep(3600)
