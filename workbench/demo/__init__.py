"""The demo: the whole step-workbench pipeline on the embedded model, ending in one offline report.

    python -m workbench.demo [--quick] [--model PATH [--prompts FILE]] [--out DIR]
    workbench demo ...   (the same)

Stages, each with its own progress bar: sample traces → label steps (checker, keywords, SPAE's Φ, rollouts)
→ capture step vectors → step SAE → probes and logit baselines → step attribution → a steering sweep with
its random control. A stage whose package is not installed, or that needs the toy checker's ground truth
when running on free prompts, is skipped with the reason in the report. Every key number is printed beside
a baseline in a final summary table, and ``<runs>/<UTC timestamp>/report.html`` (self-contained, opens with
no network) gets a section per stage with its charts, tables, the model's provenance and the settings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import traceback
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from workbench.demo.config import STAGES, DemoConfig, runs_dir
from workbench.demo.context import RunContext, format_table, run_stage, summary_table

__all__ = ["DemoConfig", "DemoResult", "run_demo", "main", "runs_dir", "configure_parser", "config_from_args", "STAGES"]


@dataclass(frozen=True, kw_only=True)
class DemoResult:
    """What a demo run produced."""

    report: Path
    """The report file."""
    summary: pd.DataFrame
    """Key numbers with their baselines (also printed)."""
    n_charts: int
    """Charts in the report."""
    skipped: dict[str, str]
    """Stages skipped, with the reason."""


def _plan(cfg: DemoConfig) -> list[tuple[str, str, object, int]]:
    from workbench.demo import later, stages

    plan = [
        ("sample", "sample traces", stages.sample, stages.SAMPLE_PARTS),
        ("label", "checker, keywords, Φ, rollouts", stages.label, stages.LABEL_PARTS),
        ("capture", "step vectors into a store", stages.capture_steps, stages.CAPTURE_PARTS),
    ]
    plan += [(name, title, fn, parts) for name, title, fn, parts in later.STAGES if name in cfg.stages]
    return plan


def _provenance(ctx: RunContext) -> None:
    import torch

    sec = ctx.report.section("Provenance and settings")
    sec.text("The model, the software and the exact settings of this run. Wall times are per stage on this machine.")
    sec.table({k: v for k, v in ctx.model.provenance().items()}, caption="Model provenance")
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch threads": torch.get_num_threads(),
        "command": " ".join(sys.argv),
    }
    sec.table(machine, caption="Machine")
    sec.table({f.name: getattr(ctx.config, f.name) for f in fields(ctx.config)}, caption="Demo settings (DemoConfig)")
    sec.table({k: round(v, 1) for k, v in ctx.seconds.items()}, caption="Wall time per stage (s)")


def run_demo(config: DemoConfig | None = None) -> DemoResult:
    """Run every stage, write the report, print the summary table; returns the report path and the table."""
    from workbench.models import load_model
    from workbench.viz import Report

    cfg = (config or DemoConfig()).scaled()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(cfg.out) if cfg.out else runs_dir() / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "store").exists():
        raise ValueError(f"out={str(run_dir)!r} already holds a demo run (store/); give a new folder")
    model = load_model(cfg.model)
    name = "the embedded model" if cfg.model is None else cfg.model
    report = Report("Step Workbench demo", f"{name} · {'quick' if cfg.quick else 'full'} run · {stamp}")
    ctx = RunContext(config=cfg, run_dir=run_dir, report=report, model=model)
    overview = report.section("Overview")
    plan = _plan(cfg)
    for i, (stage_name, title, fn, parts) in enumerate(plan, 1):
        reason = _skip_reason(ctx, stage_name)
        if reason:
            ctx.skipped[stage_name] = reason
            continue
        if i <= 3:  # sample, label, capture: everything else needs them
            run_stage(ctx, stage_name, title, fn, parts, (i, len(plan)))
            continue
        try:  # an analysis stage that fails must not cost the report of the others
            run_stage(ctx, stage_name, title, fn, parts, (i, len(plan)))
        except Exception as e:  # reported in the summary and the report, traceback printed
            traceback.print_exc()
            ctx.skipped[stage_name] = f"failed: {type(e).__name__}: {e}"
    for s, why in ctx.skipped.items():
        report.section(f"{s} · skipped").text(why)
    _provenance(ctx)
    table = summary_table(ctx)
    overview.text(
        "Every number below sits beside the baseline that gives it meaning (chance, a random control, or the model "
        "card's own measurement). Sections follow the pipeline; the last one records provenance and settings."
    )
    overview.table(table, caption="Key numbers of this run")
    path = report.write(run_dir / "report.html")
    print(format_table(table))
    print(f"report: {path}")
    return DemoResult(report=path, summary=table, n_charts=report.n_charts, skipped=dict(ctx.skipped))


def _skip_reason(ctx: RunContext, stage: str) -> str:
    from workbench.demo import later

    return later.skip_reason(ctx, stage)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the demo's flags (shared by ``python -m workbench.demo`` and ``workbench demo``); see DemoConfig."""
    d = DemoConfig
    p.add_argument("--quick", action="store_true", help="a small version of every stage (about 2 minutes on 2 CPUs)")
    p.add_argument("--model", default=None, help="a local Hugging Face model folder (default: the embedded model)")
    p.add_argument("--prompts", default=None, help="with --model: a text file with one prompt per line")
    p.add_argument("--segmenter", default=d.segmenter, help=f"how steps are cut ({d.segmenter})")
    p.add_argument(
        "--n", type=int, default=d.n_problems, dest="n_problems", help=f"problems / prompts ({d.n_problems})"
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of every random choice ({d.seed})")
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="stages to run (all)")
    p.add_argument("--out", default=None, help="run folder (default: <runs>/<UTC timestamp>)")


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    keys = {f.name for f in fields(DemoConfig)}
    values = {k: v for k, v in vars(args).items() if k in keys}
    values["stages"] = tuple(values.get("stages", STAGES))
    return DemoConfig(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.demo", description=__doc__.splitlines()[0])
    configure_parser(parser)
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    run_demo(cfg)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
