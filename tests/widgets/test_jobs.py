"""Job: the background runner every panel uses (result, error, cancellation, progress)."""

from __future__ import annotations

import threading

from workbench.viz.widgets_jobs import Job


def test_result_error_and_progress_reach_their_callbacks():
    seen = []
    job = Job(lambda ctx: (ctx.progress(1.7, "over"), 42)[1], on_progress=lambda f, m: seen.append((f, m)),
              on_done=seen.append).start().join(10)  # fmt: skip
    assert job.status == "done" and job.result == 42 and seen == [(1.0, "over"), 42]  # progress clamped to 1

    errors = []
    job = Job(lambda ctx: 1 / 0, on_error=errors.append).start().join(10)
    assert job.status == "error" and isinstance(errors[0], ZeroDivisionError) and job.error is errors[0]


def test_cancel_stops_at_the_next_check():
    started, release, steps, cancelled = threading.Event(), threading.Event(), [], []

    def work(ctx):
        started.set()
        release.wait(10)
        for i in range(100):
            ctx.check()
            steps.append(i)

    job = Job(work, on_cancel=lambda: cancelled.append(True)).start()
    started.wait(10)
    assert job.running
    job.cancel()
    release.set()
    job.join(10)
    assert job.status == "cancelled" and cancelled == [True] and steps == [] and not job.running
