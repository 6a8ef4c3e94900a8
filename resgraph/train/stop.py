"""Stopping a run cleanly: SIGINT and SIGTERM ask for a checkpoint and an exit."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

REPEAT_WINDOW_S = 5.0  # the same signal again within this time is the same request


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops.

    Schedulers (SLURM, Kubernetes) signal every process and torchrun forwards the signal
    too, so one request often arrives twice: the same signal again within
    ``REPEAT_WINDOW_S`` seconds is ignored. Another signal, or the same one later, aborts
    (KeyboardInterrupt) unless the checkpoint is being written, which always finishes, or
    the run has stopped and the process is exiting."""

    def __init__(self, keep_on_stop: bool = False) -> None:
        self.keep_on_stop = keep_on_stop
        self.signum: int | None = None
        self.at = 0.0
        self.saving = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.signum is None:
            self.signum, self.at = signum, now
            return
        if self.saving or (signum == self.signum and now - self.at < REPEAT_WINDOW_S):
            return
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.signum is not None and self.keep_on_stop and self._old:
            # Stopping: the process is on its way out. Under torchrun the first process to
            # exit makes torchrun signal the others; that signal is the same request, so it
            # is ignored (SIG_IGN, which unlike a Python handler lasts through interpreter
            # shutdown) and every process ends with its own status, 128 + signal.
            for sig in self._old:
                signal.signal(sig, signal.SIG_IGN)
            return
        for sig, old in self._old.items():
            signal.signal(sig, old)
