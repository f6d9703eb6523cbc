"""The demo's first three stages: sample traces, label their steps, capture step vectors into a store.

On the embedded model the traces answer held-out toy problems, so the checker gives every step's ground
truth and each model-based label source can be scored against it. With ``--model PATH --prompts FILE``
there is no checker: steps get keyword labels only, and stages that need ground truth say so and skip.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from workbench.capture import CaptureConfig, capture
from workbench.demo.context import RunContext
from workbench.labels import (
    PotentialConfig,
    RolloutConfig,
    forced_answer_labels,
    generate_toy_traces,
    join_labels,
    keyword_labels,
    potential_trend,
    roc_auc,
    rollout_agreement,
    rollout_labels,
)
from workbench.labels.checker import TOY_GENERATION
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig, generate_traces, save_traces
from workbench.viz import charts, steps_html

__all__ = ["sample", "label", "capture_steps", "SAMPLE_PARTS", "LABEL_PARTS", "CAPTURE_PARTS"]

SAMPLE_PARTS, LABEL_PARTS, CAPTURE_PARTS = 2, 4, 2


def _card_accuracy(model) -> float | str:
    """The sampled (temperature 1) accuracy the model card measured on 500 problems, if the model has one."""
    path = Path(model.resolved.path) / "evaluation.json"
    try:
        return float(json.loads(path.read_text())["sampled_t1"]["accuracy"])
    except (OSError, KeyError, ValueError, TypeError):
        return ""


def sample(ctx: RunContext, bar) -> None:
    """Sample one trace per problem (or prompt), cut into steps and, on toy problems, checked."""
    cfg = ctx.config
    gen = replace(TOY_GENERATION, seed=cfg.seed, max_new_tokens=cfg.max_new_tokens)
    if cfg.toy:
        problems = heldout_problems(TaskConfig(), cfg.n_problems)
        bar.update()
        ctx.traces = generate_toy_traces(ctx.model, problems, config=gen, progress=False)
    else:
        lines = [ln.strip() for ln in Path(cfg.prompts).read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ValueError(f"prompts={cfg.prompts!r}: the file has no non-blank line")
        prompts = [p.replace("\\n", "\n") + "\n" for p in lines[: cfg.n_problems]]
        bar.update()
        gen = GenerationConfig(max_new_tokens=cfg.max_new_tokens, temperature=1.0, seed=cfg.seed)
        ctx.traces = generate_traces(ctx.model, prompts, config=gen, segmenter=cfg.segmenter, progress=False)
    bar.update()
    save_traces(ctx.traces, ctx.run_dir / "traces.jsonl")
    steps = ctx.steps_frame()
    n_traces, n_steps = len(ctx.traces), len(steps)
    ctx.record(
        "sample",
        "traces",
        n_traces,
        note=f"one sampled completion (temperature 1) per {'problem' if cfg.toy else 'prompt'}",
    )
    ctx.record("sample", "steps", n_steps, note=f"{n_steps / max(n_traces, 1):.1f} per trace, cut by '{cfg.segmenter}'")
    sec = ctx.report.section("1 · Sample traces")
    if cfg.toy:
        acc = float(np.mean([bool(t.answer_correct) for t in ctx.traces]))
        wrong = float((~steps["label_correct"].astype(bool)).mean())
        fresh = float((~steps["label_logical"].astype(bool)).mean())
        ctx.record(
            "sample", "final answers right", acc, _card_accuracy(ctx.model), "baseline: the model card (500 problems)"
        )
        ctx.record("sample", "wrong-step rate", wrong, note=f"of which fresh errors {fresh:.3f} (the rest propagated)")
        kinds = Counter(steps["kind"])
        ctx.record(
            "sample", "wait / check lines", f"{kinds.get('wait', 0)} / {kinds.get('check', 0)}", note="the model's own"
        )
        sec.text(
            f"{n_traces} held-out problems (a seed range training never draws), one trace each, sampled at temperature "
            f"1 so errors and corrections are the model's own. Cut at newlines into {n_steps} steps; the toy checker "
            f"labels every step (correct, logical = follows from what the trace stated before, first error, kind)."
        )
        sec.table(
            {
                "traces": n_traces,
                "steps": n_steps,
                "final answers right": acc,
                "wrong-step rate": wrong,
                "fresh-error rate": fresh,
                **{f"{k} steps": v for k, v in kinds.most_common()},
            },
            caption="Key numbers of the sampled traces",
        )
        sec.chart(charts.step_strip(steps, "label_correct"))
    else:
        sec.text(
            f"{n_traces} prompts from {cfg.prompts}, one sampled completion each, cut into {n_steps} steps "
            f"by the '{cfg.segmenter}' segmenter. No checker: correctness labels are not available."
        )
        sec.chart(charts.step_strip(steps, "kind"))


def label(ctx: RunContext, bar) -> None:
    """Keyword behaviours; on toy traces also SPAE's Φ and Math-Shepherd rollouts, each scored against the checker."""
    cfg = ctx.config
    sec = ctx.report.section("2 · Label steps")
    ctx.traces = join_labels(ctx.traces, keyword_labels(ctx.traces))
    bar.update()
    steps = ctx.steps_frame()
    if not cfg.toy:
        n = int(steps["label_reflection"].sum()) if len(steps) else 0
        ctx.record("label", "reflection steps (keywords)", n, note="word lists; no ground truth for free prompts")
        sec.text(
            "Keyword labels (reflection, backtracking, verification) from word lists. Φ and rollout labels "
            "need a gold answer and are skipped for free prompts."
        )
        sec.html(steps_html(ctx.traces[:8], "label_reflection"))
        bar.update(3)
        return
    is_wait = steps["kind"] == "wait"
    hit = steps["label_reflection"].astype(bool)
    recall = float(hit[is_wait].mean()) if is_wait.any() else float("nan")
    precision = float(is_wait[hit].mean()) if hit.any() else float("nan")
    ctx.record(
        "label",
        "keyword 'reflection' vs wait lines",
        f"P {precision:.2f} / R {recall:.2f}",
        f"base rate {float(is_wait.mean()):.3f}",
        "the model writes the word 'wait'",
    )
    pcfg = PotentialConfig(n_samples=2 if cfg.quick else 4, seed=cfg.seed)
    ctx.traces = join_labels(ctx.traces, forced_answer_labels(ctx.model, ctx.traces, pcfg, progress=False))
    bar.update()
    trend = potential_trend(ctx.traces)
    ctx.record(
        "label",
        "Φ rises: last step > first",
        trend.frac_rising,
        0.5,
        f"{trend.n_traces} solved traces; baseline: a coin flip",
    )
    ctx.record("label", "Φ vs step index (Spearman)", trend.mean_spearman, 0.0, "mean over solved traces")
    sub = ctx.traces[: cfg.rollout_traces]
    if sub:
        rcfg = RolloutConfig(
            n_rollouts=cfg.n_rollouts,
            generation=GenerationConfig(
                max_new_tokens=cfg.max_new_tokens, temperature=1.0, seed=cfg.seed, batch_size=256
            ),
        )
        sub = join_labels(sub, rollout_labels(ctx.model, sub, rcfg, progress=False))
        by_id = {t.trace_id: t for t in sub}
        ctx.traces = [by_id.get(t.trace_id, t) for t in ctx.traces]
        agree = rollout_agreement(sub)
        ctx.record(
            "label",
            "rollout soft label vs viable (ROC-AUC)",
            agree.auc_viable,
            0.5,
            f"{agree.n_steps} steps of {len(sub)} traces, {cfg.n_rollouts} rollouts each",
        )
    bar.update()
    steps = ctx.steps_frame()
    phi_auc = roc_auc(steps["label_spae_phi"], steps["label_prefix_correct"])
    ctx.record("label", "Φ vs prefix correct (ROC-AUC)", phi_auc, 0.5, "all steps")
    sec.text(
        "Three label sources besides the checker. Keywords: the word lists of RISE's behaviours. SPAE's forced-answer "
        "potential Φ = 1.5·Acc·Conf + 0.5·Acc − Conf after each step (append 'ans=', read the gold answer's "
        f"probability and the answer entropy): it should rise over solved traces. Rollouts: {cfg.n_rollouts} "
        f"continuations from each step of {len(sub)} traces; the share reaching the gold answer estimates whether "
        "the path is still viable."
    )
    sec.table(
        {
            "keyword precision on wait lines": precision,
            "keyword recall on wait lines": recall,
            "Φ last > first (solved traces)": trend.frac_rising,
            "Φ Spearman with step": trend.mean_spearman,
            "Φ by third of the trace": tuple(round(x, 3) for x in trend.mean_phi_by_third),
            "Φ ROC-AUC vs prefix_correct": phi_auc,
            **(
                {
                    "rollout ROC-AUC vs viable": agree.auc_viable,
                    "mean soft label on dead paths": agree.mean_soft_after_error,
                }
                if sub
                else {}
            ),
        },
        caption="Label sources against the checker (chance: ROC-AUC 0.5, rising share 0.5)",
    )
    sec.chart(charts.phi_curve(steps[steps["trace_id"].isin(steps["trace_id"].unique()[:40])]))
    if sub:
        sec.chart(charts.rollout_vs_checker(steps.dropna(subset=["label_rollout_soft"])))
    sec.chart(charts.step_strip(steps, "label_spae_phi"))
    corrected = [t for t in ctx.traces if any(s.kind == "wait" for s in t.steps)]
    sec.text("Traces where the model wrote a wait line (hover a step for all its labels and scores):")
    sec.html(steps_html(corrected[:4] or ctx.traces[:4], "label_correct"))
    bar.update()


def capture_steps(ctx: RunContext, bar) -> None:
    """Boundary and mean vectors of every layer's residual stream plus logit statistics, into a store."""
    store_dir = ctx.run_dir / "store"
    hooks = tuple(f"blocks.{i}.hook_resid_post" for i in range(ctx.model.n_layers))
    ccfg = CaptureConfig(hooks=hooks, poolings=("boundary", "mean"), logit_stats=True, progress=False)
    result = capture(ctx.traces, ctx.model, store_dir, ccfg)
    bar.update()
    ctx.store = open_store(store_dir)
    index = ctx.store.index
    size_mb = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file()) / 1e6
    ctx.record("capture", "steps captured", result.steps, len(index), "baseline: steps in the traces")
    ctx.record(
        "capture", "store size (MB)", size_mb, note=f"{len(ctx.store.keys)} tensor keys, {result.shards} shard(s)"
    )
    sec = ctx.report.section("3 · Capture step vectors")
    sec.text(
        f"One forward pass per batch captures, for every step, the residual stream after each of the {len(hooks)} "
        "layers at the step's boundary token (the newline that ends it, RISE's read-out) and averaged over its "
        "tokens, plus per-step logit statistics (max probability, entropy, perplexity) for the probe baselines."
    )
    sec.table(
        {
            "traces": result.traces,
            "steps": result.steps,
            "tensor keys": len(ctx.store.keys),
            "store size (MB)": size_mb,
            "seconds": result.seconds,
        },
        caption=f"Store at {store_dir.name}/",
    )
    sec.chart(charts.store_overview(index))
    bar.update()
