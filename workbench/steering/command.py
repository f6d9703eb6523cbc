"""``workbench steer``: a steering sweep from the command line, written as a tidy table.

    workbench steer --vector artifacts/vectors/wait --alphas -1 0 0.5 1 2 --problems 200 --out sweep.parquet

Loads saved vectors (:func:`workbench.steering.load_vector`), samples held-out toy problems under each
alpha (and the equal-norm random control), and writes one row per trace (``.parquet`` or ``.csv``), a
bootstrap summary beside it (``<out stem>.summary.csv``) and the sweep's settings and vectors'
provenance (``<out stem>.json``). Everything is validated before the model samples anything; files are
written atomically. ``workbench.cli`` registers the command; this module holds its flags and its run.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from workbench.atomic import atomic_write_json, atomic_write_table

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser, field_docs: Callable[[type], dict[str, str]]) -> None:
    """Add the ``steer`` flags (help text from the config dataclasses' field docstrings)."""
    from workbench.steering.positions import POSITION_KINDS, Positions
    from workbench.steering.sweep import EDITS, SweepConfig

    doc, pdoc = field_docs(SweepConfig), field_docs(Positions)
    p.add_argument("--vector", nargs="+", required=True, help="saved steering vector folder(s) (SteeringVector.save)")
    p.add_argument("--alphas", nargs="+", type=float, default=SweepConfig.alphas, help=doc.get("alphas"))
    p.add_argument("--problems", type=int, default=100, help="held-out toy problems to sample (default 100)")
    p.add_argument("--problem-seed", type=int, default=None, help="seed of the held-out problems (default: toy's)")
    p.add_argument("--seeds", nargs="+", type=int, default=SweepConfig.seeds, help=doc.get("seeds"))
    p.add_argument("--edit", choices=EDITS, default="additive", help=doc.get("edit"))
    p.add_argument("--positions", choices=POSITION_KINDS, default="boundary", help=pdoc.get("kind"))
    p.add_argument("--start", type=int, default=0, help=pdoc.get("start"))
    p.add_argument("--segmenter", default="newline", help=pdoc.get("segmenter"))
    p.add_argument("--include-prompt", action="store_true", help="also edit prompt tokens (default: generated only)")
    p.add_argument("--no-control", action="store_true", help="leave out the random control (not recommended)")
    p.add_argument("--temperature", type=float, default=SweepConfig.temperature, help=doc.get("temperature"))
    p.add_argument("--max-new-tokens", type=int, default=SweepConfig.max_new_tokens, help=doc.get("max_new_tokens"))
    p.add_argument("--batch-size", type=int, default=SweepConfig.batch_size, help=doc.get("batch_size"))
    p.add_argument("--model", default=None, help="model folder or hub name in the local cache (default: embedded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--out", required=True, help="the per-trace table (.parquet or .csv)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Validate, sample, write ``--out`` plus its summary and settings; prints the summary's wait rates."""
    from workbench.models import load_model
    from workbench.steering.positions import Positions
    from workbench.steering.sweep import SweepConfig, run_sweep, summarise
    from workbench.steering.vectors import SteeringError, load_vector
    from workbench.toy import TaskConfig
    from workbench.toy.evaluate import HELDOUT_SEED, heldout_problems

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise SteeringError(f"--out {out}: give a .parquet or .csv path")
    if args.problems < 1:
        raise SteeringError(f"--problems {args.problems}: must be at least 1")
    vectors = [load_vector(v) for v in args.vector]
    positions = Positions(
        kind=args.positions, start=args.start, segmenter=args.segmenter, generated_only=not args.include_prompt
    )
    cfg = SweepConfig(
        alphas=tuple(args.alphas), edit=args.edit, positions=positions, seeds=tuple(args.seeds),
        control=not args.no_control, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, progress=not args.no_progress,
    )  # fmt: skip
    model = load_model(args.model, device=args.device)
    for v in vectors:
        v.check_model(model)
    seed = HELDOUT_SEED if args.problem_seed is None else args.problem_seed
    problems = heldout_problems(TaskConfig(), args.problems, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = run_sweep(model, vectors, problems, cfg)
    summary = summarise(rows)
    settings = rows.attrs["sweep"] | {"problems": args.problems, "problem_seed": seed, "model": model.provenance()}
    rows.attrs = {}
    atomic_write_table(rows, out)
    atomic_write_table(summary, out.with_suffix(".summary.csv"))
    atomic_write_json(out.with_suffix(".json"), settings, indent=2, default=str)
    wait = summary[summary.metric == "wait_rate"][["vector", "direction", "alpha", "value", "lo", "hi"]]
    print(wait.to_string(index=False))
    return 0
