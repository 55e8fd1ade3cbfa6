"""Chaos testing: make a worker crash or hang on chosen clips, to exercise the recovery paths for real.

Set ``MOTIONPIPE_INJECT_FAULTS="crash:KEY1,hang:KEY2"`` in the environment of the workers: the worker
that reaches KEY1 dies by SIGSEGV, as a decoder bug would kill it; the one that reaches KEY2 sleeps
until the hang watchdog stops it. ``hang-pass:PATH`` makes the model server that first creates the file
PATH hang in its model pass, as a wedged GPU would (its other threads still answer); ``hang-pass:*`` makes
every server hang in its first pass, restarted or not (a GPU that wedges again each time). Unset (always,
outside tests), it does nothing.
"""

from __future__ import annotations

import os
import signal
import time

FAULTS_ENV = "MOTIONPIPE_INJECT_FAULTS"


def requested_faults() -> dict[str, str]:
    """What the environment asks for: key (a clip's, or a path) -> fault."""
    spec = os.environ.get(FAULTS_ENV, "")
    return dict(item.split(":", 1)[::-1] for item in spec.split(",") if ":" in item)


def hang_forever() -> None:
    while True:
        time.sleep(3600)


def inject_faults(keys: list[str]) -> None:
    """Crash or hang here if the environment asks for it for one of ``keys``."""
    faults = requested_faults()
    for key in keys:
        if faults.get(key) == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        if faults.get(key) == "hang":
            hang_forever()


def inject_pass_fault() -> None:
    """Hang this model pass if the environment asks for it: ``hang-pass:*``, or ``hang-pass:PATH`` and no server
    has created PATH yet (a restarted server finds it there and runs)."""
    for path, fault in requested_faults().items():
        if fault != "hang-pass":
            continue
        if path == "*":
            hang_forever()
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        hang_forever()
