"""What the UncertaintyMonitor runs: generation that reports each step's uncertainty-head score as it completes.

:func:`live_generate` is :func:`workbench.heads.live.generate_scored` for one prompt with a callback: the
head's :class:`~workbench.heads.live.LiveStepScorer` scores a step right after the model has written its
boundary token, and :class:`NotifyingScorer` passes each new score (with the step's text) to ``on_step``
at that moment, from inside ``generate``. Cancelling a job stops generation at the next token.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import pandas as pd
import torch

from workbench.heads.live import LiveStepScorer, generate_with_scorer
from workbench.traces.generate import GenerationConfig, left_pad
from workbench.viz.scales import ScaleChoice, color_for, text_color
from workbench.viz.widgets_jobs import JobContext

__all__ = ["NotifyingScorer", "live_generate", "live_steps_html"]

_PROB = ScaleChoice(kind="sequential", domain=(0.0, 1.0))


class NotifyingScorer(LiveStepScorer):
    """A live step scorer that calls ``on_step(record)`` for every step the moment it is scored (in this
    process by default: the monitor generates one prompt at a time, where a scoring process would only add
    its start-up)."""

    def __init__(
        self, model, head, on_step: Callable[[dict], None], ctx: JobContext | None = None, *, offload: bool = False
    ) -> None:
        super().__init__(model, head, offload=offload)
        self.on_step, self.ctx = on_step, ctx

    def __call__(self, input_ids, scores=None, **kwargs):
        self._ids = input_ids
        stop = super().__call__(input_ids, scores, **kwargs)
        if self.ctx is not None and self.ctx.cancelled:
            return torch.ones_like(stop)  # stop generating; the job reports the cancellation
        return stop

    def on_records(self, records: list[dict]) -> None:
        for rec in records:
            ids = self._ids[rec["row"], self.prompt_len + rec["token_start"] : self.prompt_len + rec["token_end"]]
            rec["text"] = self.model.tokenizer.decode(ids.tolist()).strip()
            rec["head_prob"] = float(torch.sigmoid(torch.tensor(rec["head_score"])))
            self.on_step(rec)


def live_generate(
    model,
    head,
    prompt: str,
    on_step: Callable[[dict], None],
    *,
    config: GenerationConfig | None = None,
    ctx: JobContext | None = None,
) -> pd.DataFrame:
    """Generate for ``prompt``; call ``on_step`` with each step's record as soon as it is scored. Returns all
    records (``step_index, token_start, token_end, head_score, head_prob, text, ...``)."""
    config = config or GenerationConfig(max_new_tokens=160)
    tok = model.tokenizer
    batch = left_pad([tok(prompt, add_special_tokens=False)["input_ids"]], tok.pad_token_id)
    with NotifyingScorer(model, head, on_step, ctx) as scorer:  # seeded like generate_scored
        generate_with_scorer(model, scorer, batch, config)
    if ctx is not None:
        ctx.check()
    return pd.DataFrame(scorer.records)


def live_steps_html(records: list[dict]) -> str:
    """The steps scored so far, each coloured by the head's probability that it is wrong."""
    rows = []
    for r in records:
        bg = color_for(r["head_prob"], _PROB)
        rows.append(
            f"<div class='wb-live-step' data-step='{r['step_index']}' style='font-family:monospace;"
            f"background:{bg};color:{text_color(bg)};padding:0 4px;margin:1px 0'>"
            f"<span style='display:inline-block;width:52px'>{r['head_prob']:.2f}</span>{html.escape(r['text'])}</div>"
        )
    return "<div class='wb-live-steps'>" + "".join(rows) + "</div>"
