"""The demo: the workbench's main job end to end on the embedded model, in about a minute on CPU.

    python -m workbench.demo [--n 64] [--out artifacts/runs/demo]

Loads the embedded model (no download), samples traces for held-out problems, cuts them into steps,
labels every step with the checker, and prints what the model did: accuracy, wrong steps, corrections,
and one trace step by step with its labels and boundary tokens.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from workbench.models import load_model
from workbench.toy import TaskConfig
from workbench.toy.evaluate import generate_completions, heldout_problems
from workbench.traces import Trace, trace_from_text

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
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"--n={args.n}: sample at least one problem")

    model = load_model(args.model)
    print(
        f"model: {model.resolved.path} ({model.config.model_type}, {model.n_layers} layers, d_model {model.d_model},"
        f" {model.device}, {str(model.dtype).removeprefix('torch.')})"
    )
    problems = heldout_problems(TaskConfig(), args.n)
    completions = generate_completions(
        model.hf_model, model.tokenizer, [p.prompt for p in problems], temperature=1.0, seed=args.seed
    )
    traces = [
        trace_from_text(
            p,
            c,
            trace_id=f"{p.problem_id}/s{args.seed}",
            tokenizer=model.tokenizer,
            n_ctx=model.n_ctx,
            generation={"temperature": 1.0, "seed": args.seed},
        )
        for p, c in zip(problems, completions, strict=True)
    ]
    print(_summary(traces))
    interesting = next(
        (t for t in traces if any(s.kind == "wait" for s in t.steps)),
        next((t for t in traces if not t.answer_correct), traces[0]),
    )
    print(_show(interesting))
    return traces


if __name__ == "__main__":
    main()
