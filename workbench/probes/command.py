"""``workbench probe``: a layer sweep of a store's step vectors against one index column, printed as a table.

workbench probe --store artifacts/runs/store --target label_logical --positive false --poolings boundary mean
"""

from __future__ import annotations

import argparse

from workbench.atomic import atomic_path
from workbench.labels.table import parse_label_value

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser, field_docs) -> None:
    from workbench.probes.linear import ProbeConfig

    doc = field_docs(ProbeConfig)
    p.add_argument("--store", required=True, help="a step store (workbench capture)")
    p.add_argument("--target", required=True, help="index column to predict (label_logical, label_correct, ...)")
    p.add_argument(
        "--positive", default="true", help="binary targets: the value counted as positive (false for 'wrong' steps)"
    )
    p.add_argument("--task", choices=("binary", "multiclass", "regression"), default=None, help="default: from dtype")
    p.add_argument("--hooks", nargs="+", default=None, help="hooks to sweep (default: every hook in the store)")
    p.add_argument("--poolings", nargs="+", default=("boundary",), help="poolings to sweep")
    p.add_argument("--l2", type=float, default=ProbeConfig.l2, help=doc.get("l2"))
    p.add_argument("--max-iter", type=int, default=ProbeConfig.max_iter, help=doc.get("max_iter"))
    p.add_argument("--device", default=None, help=doc.get("device"))
    p.add_argument("--seed", type=int, default=0, help="seed of the problem split (StepStore.split, 80/10/10)")
    p.add_argument("--csv", default=None, help="also write the table to this CSV file")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from workbench.probes.linear import ProbeConfig, layer_sweep
    from workbench.store import open_store

    store = open_store(args.store)
    captured = store.index[store.index.row >= 0]
    res = layer_sweep(
        store,
        args.target,
        hooks=args.hooks,
        poolings=tuple(args.poolings),
        splits=store.split(seed=args.seed, index=captured),
        positive=parse_label_value(args.positive),
        task=args.task,
        config=ProbeConfig(l2=args.l2, max_iter=args.max_iter, device=args.device),
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 4):
        print(res.table.to_string(index=False))
    if args.csv:
        with atomic_path(args.csv) as tmp:
            res.table.to_csv(tmp, index=False)
    return 0
