"""Benchmark: model-based step labels against the checker on the embedded model.

    python benchmarks/labels.py [--n 48] [--rollouts 8] [--model PATH]

Traces: the model's own samples at temperature 1 on held-out problems in distribution (2-5 statements) and
on longer programs (7-9 statements, where the model makes its own errors), plus the task's rendered
solutions with injected errors (known uncorrected errors). Every step gets the checker's labels
(ground truth), Math-Shepherd rollout labels (N continuations per step prefix) and SPAE's forced-answer
potential. Reports the ROC-AUC of the rollout soft label against the checker's path viability
(``prefix_correct``) and step correctness, the mean soft label after an uncorrected error and on correct
prefixes of solved problems, and the trend of Φ over the steps of correctly solved traces. Writes
``benchmarks/results/labels.md`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from workbench.labels import (
    PotentialConfig,
    RolloutConfig,
    forced_answer_labels,
    generate_toy_traces,
    join_labels,
    rollout_labels,
    traces_from_samples,
)
from workbench.labels.agreement import potential_trend, rollout_agreement
from workbench.models import load_model
from workbench.toy.evaluate import heldout_problems
from workbench.toy.task import TaskConfig, generate_samples
from workbench.traces import GenerationConfig
from workbench.traces.io import atomic_write_bytes

RESULTS = Path(__file__).parent / "results" / "labels.md"


def trace_sets(model, n: int) -> dict[str, list]:
    """Sampled traces in and out of distribution, and rendered solutions with injected errors."""
    sample = GenerationConfig(max_new_tokens=240, temperature=1.0, batch_size=64, seed=1)
    ood = TaskConfig(min_statements=7, max_statements=9)
    injected = TaskConfig(p_error=0.25, p_correct=0.5, p_check=0.1)
    return {
        "sampled, 2-5 statements": generate_toy_traces(model, heldout_problems(TaskConfig(), n), config=sample),
        "sampled, 7-9 statements": generate_toy_traces(model, heldout_problems(ood, n, seed=31_000), config=sample),
        "injected errors": traces_from_samples(
            generate_samples(injected, n, seed=32_000, prefix="inj"), tokenizer=model.tokenizer, n_ctx=model.n_ctx
        ),
    }


def fmt(x: float) -> str:
    return f"{x:.3f}"


def section(name: str, traces: list) -> str:
    a, p = rollout_agreement(traces), potential_trend(traces)
    solved = sum(bool(t.answer_correct) for t in traces)
    return (
        f"| {name} | {len(traces)} ({solved} solved) | {a.n_steps} | **{fmt(a.auc_viable)}** | "
        f"{fmt(a.auc_prefix_correct)} | {fmt(a.auc_correct)} | {fmt(a.mean_soft_after_error)} (n={a.n_after_error}) | "
        f"{fmt(a.mean_soft_solved_correct)} | {fmt(p.mean_spearman)} | {fmt(p.frac_rising)} | "
        f"{' → '.join(fmt(x) for x in p.mean_phi_by_third)} |"
    )


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=48, help="problems per trace set (48)")
    parser.add_argument("--rollouts", type=int, default=8, help="continuations per step prefix (8)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    parser.add_argument("--out", default=None, help=f"write the markdown here (e.g. {RESULTS}); default: print only")
    args = parser.parse_args(argv)
    t0 = time.time()
    model = load_model(args.model)
    sets = trace_sets(model, args.n)
    everything = [t for ts in sets.values() for t in ts if t.steps]
    rollout_cfg = RolloutConfig(
        n_rollouts=args.rollouts, generation=GenerationConfig(max_new_tokens=240, temperature=1.0, batch_size=256)
    )
    potential_cfg = PotentialConfig()
    tables = [
        rollout_labels(model, everything, rollout_cfg),
        forced_answer_labels(model, everything, potential_cfg),
    ]
    labelled = {t.trace_id: t for t in join_labels(everything, *tables)}
    rows = [section(name, [labelled[t.trace_id] for t in ts if t.steps]) for name, ts in sets.items()]
    in_dist = [labelled[t.trace_id] for name, ts in sets.items() if "7-9" not in name for t in ts if t.steps]
    rows.append(section("in distribution (sampled 2-5 + injected)", in_dist))
    rows.append(section("all", list(labelled.values())))
    cpu = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    text = f"""# Step labels against the checker (embedded model)

- date: {datetime.date.today().isoformat()}
- machine: {cpu}, torch {torch.__version__}; {time.time() - t0:.0f} s in all
- model: `{model.resolved.path.name}`, weights sha256 `{model.weights_sha256[:12]}`
- command: `python benchmarks/labels.py --n {args.n} --rollouts {args.rollouts}`
- rollouts: {args.rollouts} per step prefix, temperature 1.0, max_new_tokens 240, answer read by `ans=(\\d+)`
- forced answer (SPAE): {asdict(potential_cfg) | {"answer": "cue 'ans=', terminator newline"}}

| set | traces | steps | AUC soft vs viable | AUC soft vs prefix_correct | AUC soft vs correct \
| mean soft on dead paths | mean soft on correct prefixes of solved | Φ Spearman with step (solved) \
| share of solved traces with Φ last > first | mean Φ by third of trace (solved) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|
{chr(10).join(rows)}

Checker labels: `viable` = no uncorrected error in a value the answer depends on (what rollouts estimate);
`prefix_correct` = no uncorrected error at all; `correct` = the step's own value; on the answer line all
three are the answer's correctness. "Dead paths" are steps that are not viable after a step that was not
viable either (the error was not corrected). A wrong step that the model corrects on the next line keeps
a high soft label, by design of Math-Shepherd labels. Soft labels estimate *this model's* chance of
finishing right: on programs longer than any in training the model rarely solves anything, so soft labels
are low even on viable prefixes and the AUC there says little about the labels.
"""
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    print(text)
    return text


if __name__ == "__main__":
    main()
