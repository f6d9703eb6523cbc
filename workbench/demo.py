"""The demo: the workbench's main job end to end on the embedded model, in about a minute on CPU.

    python -m workbench.demo [--n 64] [--out artifacts/runs/demo]

Loads the embedded model (no download), samples traces for held-out problems, cuts them into steps,
labels every step with the checker, captures every step's residual-stream vectors into a step-activation
store, and prints what the model did (accuracy, wrong steps, corrections, one trace step by step) and how
far apart correct and wrong steps lie at each layer.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from workbench.capture import CaptureConfig, capture
from workbench.labels import generate_toy_traces
from workbench.labels.checker import TOY_GENERATION
from workbench.models import load_model
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import Trace

__all__ = ["main", "runs_dir"]


def runs_dir() -> Path:
    """Where run outputs go: ``$WORKBENCH_RUNS_DIR`` or ``artifacts/runs`` (git ignores it)."""
    return Path(os.environ.get("WORKBENCH_RUNS_DIR", Path(__file__).resolve().parents[1] / "artifacts" / "runs"))


def _summary(traces: list[Trace]) -> str:
    steps = [s for t in traces for s in t.steps]
    kinds = Counter(s.kind for s in steps)
    wrong = sum(not s.labels["correct"] for s in steps)
    lines = [
        f"traces: {len(traces)}, final answers right: {sum(bool(t.answer_correct) for t in traces)}",
        f"steps: {len(steps)} ({', '.join(f'{k} {v}' for k, v in kinds.most_common())}), "
        f"incorrect: {wrong}, first errors: {sum(s.labels['first_error'] for s in steps)}",
    ]
    return "\n".join(lines)


def _show(trace: Trace) -> str:
    rows = [f"problem {trace.problem_id}: {trace.prompt.strip()}  (gold answer {trace.gold_answer})"]
    for s in trace.steps:
        flag = "" if s.labels["correct"] else ("  <- wrong" if not s.labels["logical"] else "  <- wrong (propagated)")
        rows.append(
            f"  {s.index:2d} {s.text:20s} {s.kind:8s} tokens [{s.token_start},{s.token_end}) "
            f"boundary {s.boundary_token}{flag}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> list[Trace]:
    parser = argparse.ArgumentParser(prog="python -m workbench.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="problems to sample (64)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    parser.add_argument("--out", default=None, help="store folder (default: <runs>/demo-store, replaced)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n={args.n}: sample at least one problem")

    model = load_model(args.model)
    print(
        f"model: {model.resolved.path} ({model.config.model_type}, {model.n_layers} layers, d_model {model.d_model},"
        f" {model.device}, {str(model.dtype).removeprefix('torch.')})"
    )
    problems = heldout_problems(TaskConfig(), args.n)
    traces = generate_toy_traces(model, problems, config=replace(TOY_GENERATION, seed=args.seed))
    print(_summary(traces))
    interesting = next(
        (t for t in traces if any(s.kind == "wait" for s in t.steps)),
        next((t for t in traces if not t.answer_correct), traces[0]),
    )
    print(_show(interesting))
    _capture_and_compare(traces, model, Path(args.out) if args.out else runs_dir() / "demo-store")
    return traces


def _capture_and_compare(traces: list[Trace], model, out: Path) -> None:
    """Capture boundary-token vectors of every layer, then compare correct and wrong steps per layer."""
    if out.exists():
        shutil.rmtree(out)  # the demo always starts fresh; real runs append and resume
    hooks = tuple(f"blocks.{i}.hook_resid_post" for i in range(model.n_layers))
    result = capture(traces, model, out, CaptureConfig(hooks=hooks, poolings=("boundary", "mean")))
    store = open_store(out)
    captured = store.index[store.index["status"] == "captured"]
    print(f"store: {out} ({result.steps} steps, {len(store.keys)} tensor keys, {result.seconds:.1f} s)")
    correct = torch.tensor(captured["label_correct"].astype(bool).to_numpy())
    if correct.all() or not correct.any():
        return
    for hook in hooks:
        x = store.tensors(hook, "boundary", rows=captured["row"].to_numpy()).float()
        gap = (x[correct].mean(0) - x[~correct].mean(0)).norm() / x.std(0).norm()
        print(f"  {hook}: mean correct vs mean wrong step vector, distance {gap:.3f} (in units of spread)")


if __name__ == "__main__":
    main()
