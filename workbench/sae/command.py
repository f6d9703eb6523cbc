"""``workbench train-sae``: train plain step SAEs on a store's step vectors (one per hook), print final metrics.

workbench train-sae --store artifacts/runs/store --hook blocks.2.hook_resid_post --arch topk --width 512 \\
    --out artifacts/runs/sae

With several hooks (or none: every hook of the store) it is a layer sweep, each SAE in ``OUT/<hook>``.
Flags mirror :class:`workbench.sae.SAETrainConfig` (help is each field's docstring). Training runs on the
train split of the store's problems (``--train-fraction``; the rest is held out) and the printed metrics
(FVU, L0, dead fraction) are measured on the held-out steps. A second call with the same ``--out``
resumes an interrupted run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

__all__ = ["configure", "run"]

_SKIP = ("arch", "device")  # added by hand (choices / help)


def configure(p: argparse.ArgumentParser, field_docs) -> None:
    from workbench.sae.config import ARCHITECTURES, SAETrainConfig

    docs, hints = field_docs(SAETrainConfig), typing.get_type_hints(SAETrainConfig)
    p.add_argument("--store", required=True, help="a step store (workbench capture)")
    p.add_argument("--hook", nargs="+", default=None, help="hook(s) to train on (default: every hook of the store)")
    p.add_argument("--pooling", default="boundary", help="step pooling to train on")
    p.add_argument("--out", required=True, help="output folder (one SAE per hook in OUT/<hook> when sweeping)")
    p.add_argument("--arch", choices=ARCHITECTURES, default=SAETrainConfig.arch, help=docs.get("arch"))
    p.add_argument("--device", default=SAETrainConfig.device, help=docs.get("device"))
    for f in dataclasses.fields(SAETrainConfig):
        tp = hints[f.name]
        if f.name in _SKIP:
            continue
        flag = "--" + f.name.replace("_", "-")
        if tp is bool:
            p.add_argument(f"--no-{f.name}", dest=f.name, action="store_false", help=f"turn off: {docs.get(f.name)}")
        elif tp in (int, float, str):
            p.add_argument(flag, dest=f.name, type=tp, default=f.default, help=docs.get(f.name))
    p.add_argument("--train-fraction", type=float, default=0.8, help="share of problems to train on (split by problem)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the problem split (StepStore.split)")
    p.add_argument("--overwrite", action="store_true", help="replace SAEs already saved in --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _config(args: argparse.Namespace):
    from workbench.sae.config import SAETrainConfig

    names = [f.name for f in dataclasses.fields(SAETrainConfig)]
    return SAETrainConfig(**{n: getattr(args, n) for n in names if hasattr(args, n)})


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from workbench.sae.analysis import evaluate_sae
    from workbench.sae.train import train_layers, train_sae
    from workbench.store import open_store

    cfg = _config(args)  # a bad value fails here, before the store is read
    if not 0 < args.train_fraction <= 1:
        raise ValueError(f"--train-fraction {args.train_fraction}: must be in (0, 1]")
    store = open_store(args.store)
    captured = store.index[store.index.row >= 0]
    if args.train_fraction < 1:
        split = store.split({"train": args.train_fraction, "test": 1 - args.train_fraction}, seed=args.split_seed)
        train_rows, test_rows = (split[k][split[k].row >= 0] for k in ("train", "test"))
    else:
        train_rows, test_rows = captured, captured
    common = dict(pooling=args.pooling, rows=train_rows, overwrite=args.overwrite, progress=not args.no_progress)
    if args.hook is not None and len(args.hook) == 1:
        saes = {args.hook[0]: train_sae(store, args.hook[0], cfg, out=args.out, **common)}
    else:
        saes = train_layers(store, cfg, hooks=args.hook, out=Path(args.out), **common)
    for trained in saes.values():
        metrics = evaluate_sae(trained, store, rows=test_rows if len(test_rows) else train_rows).iloc[0].to_dict()
        print(json.dumps({**metrics, "evaluated_on": "held-out problems" if args.train_fraction < 1 else "train",
                          "path": str(trained.path)}))  # fmt: skip
    return 0
