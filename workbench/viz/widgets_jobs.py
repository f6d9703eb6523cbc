"""Background jobs for the notebook panels: long work off the kernel's message loop, with progress and cancel.

A panel that trains a probe or runs a steering sweep must not block the kernel: while the job runs, the
kernel keeps answering widget messages (the cancel button, other cells). :class:`Job` runs a function in
a daemon thread and hands it a :class:`JobContext` to report progress and to check for cancellation;
the panel gets ``on_progress``, ``on_done`` and ``on_error`` callbacks (called from the worker thread:
they should only set widget values, which ipywidgets sends from any thread).

Cancellation is cooperative: the function calls ``ctx.check()`` between units of work, which raises
:class:`Cancelled` once ``cancel()`` was called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Cancelled", "Job", "JobContext"]


class Cancelled(Exception):
    """Raised inside a job by :meth:`JobContext.check` after :meth:`Job.cancel`."""


class JobContext:
    """What a running job sees: progress reporting and the cancel flag."""

    def __init__(self, on_progress: Callable[[float, str], None] | None) -> None:
        self._cancel = threading.Event()
        self._on_progress = on_progress

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job was cancelled (call it between units of work)."""
        if self._cancel.is_set():
            raise Cancelled

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1] (clamped) with a short message; also a cancellation point."""
        self.check()
        if self._on_progress is not None:
            self._on_progress(min(max(float(fraction), 0.0), 1.0), message)


class Job:
    """Run ``fn(ctx)`` in a daemon thread; report its result, error or cancellation through callbacks."""

    def __init__(
        self,
        fn: Callable[[JobContext], Any],
        *,
        on_progress: Callable[[float, str], None] | None = None,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_cancel: Callable[[], None] | None = None,
        name: str = "workbench-job",
    ) -> None:
        self.ctx = JobContext(on_progress)
        self.result: Any = None
        self.error: BaseException | None = None
        self.status = "pending"
        self._fn, self._done, self._error, self._cancelled = fn, on_done, on_error, on_cancel
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Job:
        self.status = "running"
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at its next cancellation point."""
        self.ctx._cancel.set()

    def join(self, timeout: float | None = None) -> Job:
        self._thread.join(timeout)
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self.result = self._fn(self.ctx)
        except Cancelled:
            self.status = "cancelled"
            _call(self._cancelled)
        except Exception as exc:  # shown in the panel; a dead thread would leave it hanging
            self.error, self.status = exc, "error"
            _call(self._error, exc)
        else:
            self.status = "done"
            _call(self._done, self.result)


def _call(fn: Callable | None, *args: Any) -> None:
    if fn is not None:
        fn(*args)
