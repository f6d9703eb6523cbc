"""Planning: length buckets under a token budget, deterministic, every trace exactly once."""

from __future__ import annotations

from workbench.capture.plan import CAPTURED, plan_batches
from workbench.capture.pooling import make_batch


def _plan(tokenizer, traces, **kw):
    args = {"max_len": 256, "window": 4096, "max_batch_tokens": 600, "batch_size": 3, **kw}
    return list(plan_batches(traces, tokenizer, **args))


def test_batches_respect_budgets_cover_every_trace_once_and_are_deterministic(tiny_model, traces):
    batches = _plan(tiny_model.tokenizer, traces)
    ids = [p.trace.trace_id for b in batches for p in b.traces]
    assert sorted(ids) == sorted(t.trace_id for t in traces)
    assert [b.number for b in batches] == list(range(len(batches)))
    for b in batches:
        assert len(b.traces) <= 3 and (b.n_padded <= 600 or len(b.traces) == 1)
    lengths = [len(p.ids) for b in batches for p in b.traces]
    assert lengths == sorted(lengths, reverse=True), "a window is bucketed longest first"
    again = _plan(tiny_model.tokenizer, traces)
    assert [[p.trace.trace_id for p in b.traces] for b in again] == [
        [p.trace.trace_id for p in b.traces] for b in batches
    ]


def test_windows_bound_the_bucketing(tiny_model, traces):
    batches = _plan(tiny_model.tokenizer, traces, window=4)
    seen = [p.trace.trace_id for b in batches for p in b.traces]
    first_window = {t.trace_id for t in traces[:4]}
    assert set(seen[:4]) == first_window, "traces of the first window are planned before any later one"


def test_make_batch_indexes_each_captured_steps_tokens(tiny_model, traces):
    batch = _plan(tiny_model.tokenizer, traces, batch_size=4, max_batch_tokens=10_000)[0]
    host = make_batch(batch.traces, pad_id=0)
    idx = host.index
    steps = [
        (b, s)
        for b, p in enumerate(batch.traces)
        for s, st in zip(p.trace.steps, p.status, strict=True)
        if st == CAPTURED
    ]
    assert idx.n_steps == len(steps)
    for i, (b, s) in enumerate(steps):
        mine = idx.tok_step == i
        assert (idx.tok_row[mine] == b).all()
        assert idx.tok_pos[mine].tolist() == list(range(s.token_start, s.token_end))
        assert idx.boundary[i] == s.boundary_token and idx.n_tokens[i] == s.token_end - s.token_start
    for b, p in enumerate(batch.traces):  # right padding: real ids first, pads after
        assert host.input_ids[b, : len(p.ids)].tolist() == p.ids.tolist()
        assert (host.input_ids[b, len(p.ids) :] == 0).all()
