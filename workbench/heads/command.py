"""``workbench train-head``: train an uncertainty head on a store's token features; prints its best metrics.

    workbench train-head --store artifacts/runs/store --out artifacts/runs/head \
        --hooks blocks.2.hook_resid_post blocks.3.hook_resid_post --target label_logical --positive false
"""

from __future__ import annotations

import argparse
import json

from workbench.labels.table import parse_label_value

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser, field_docs) -> None:
    from workbench.heads.model import HeadConfig
    from workbench.heads.train import HeadTrainConfig

    h, t = field_docs(HeadConfig), field_docs(HeadTrainConfig)
    p.add_argument("--store", required=True, help="a step store captured with token features")
    p.add_argument("--out", required=True, help="directory for cfg.json, head.safetensors, manifest.json (resumes)")
    p.add_argument("--hooks", nargs="+", required=True, help=h.get("hooks"))
    p.add_argument("--logit-features", action="store_true", help=h.get("logit_features"))
    for name in ("top_k", "width", "n_layers", "n_heads"):
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(HeadConfig, name), help=h.get(name))
    p.add_argument("--dropout", type=float, default=HeadConfig.dropout, help=h.get("dropout"))
    p.add_argument("--target", default=HeadTrainConfig.target, help=t.get("target"))
    p.add_argument("--positive", default="false", help=t.get("positive"))
    for name in ("epochs", "batch_size", "patience", "seed"):
        p.add_argument(
            f"--{name.replace('_', '-')}", type=int, default=getattr(HeadTrainConfig, name), help=t.get(name)
        )
    for name in ("lr", "weight_decay", "pos_weight"):
        p.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=getattr(HeadTrainConfig, name), help=t.get(name)
        )
    p.add_argument("--monitor", default=HeadTrainConfig.monitor, help=t.get("monitor"))
    p.add_argument("--device", default=None, help=t.get("device"))
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from workbench.heads.model import HeadConfig
    from workbench.heads.train import HeadTrainConfig, train_head
    from workbench.store import open_store

    cfg = HeadConfig(
        hooks=tuple(args.hooks), logit_features=args.logit_features, top_k=args.top_k, width=args.width,
        n_layers=args.n_layers, n_heads=args.n_heads, dropout=args.dropout,
    )  # fmt: skip
    train = HeadTrainConfig(
        target=args.target, positive=parse_label_value(args.positive), epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, pos_weight=args.pos_weight, patience=args.patience,
        monitor=args.monitor, seed=args.seed, device=args.device, progress=not args.no_progress,
    )  # fmt: skip
    res = train_head(open_store(args.store), args.out, cfg, train)
    best = res.history[res.history.epoch == res.best_epoch].to_dict("records")
    print(json.dumps({"path": str(res.path), "best_epoch": res.best_epoch, "best": best[0] if best else None}))
    return 0
