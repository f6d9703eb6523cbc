"""Training, saving and scoring uncertainty heads on a step store.

Only the head trains (the model is frozen: its features were captured). BCE with ``pos_weight`` on the
steps' "wrong" labels (UHeads uses 3), AdamW, early stopping on a validation split made by problem. Every
epoch writes a checkpoint (``checkpoint/``: last and best weights as safetensors, optimiser state through
``torch.save``, read back with ``weights_only=True``, and ``state.json``), so an interrupted run resumes where
it stopped. The finished head is ``cfg.json`` + ``head.safetensors`` + ``manifest.json`` (store, model
provenance, features, target, splits, metrics, history); every file is written atomically.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from sklearn.metrics import average_precision_score, roc_auc_score
from tqdm.auto import tqdm

from workbench.atomic import atomic_path, atomic_write_json
from workbench.heads.data import TraceSequence, collate, feature_keys, load_sequences
from workbench.heads.model import HeadConfig, UncertaintyHead

__all__ = [
    "HeadTrainConfig",
    "HeadTrainResult",
    "train_head",
    "train_on_sequences",
    "load_head",
    "score_sequences",
    "score_steps",
]


@dataclass(frozen=True, kw_only=True)
class HeadTrainConfig:
    """How a head is trained (saved in its manifest)."""

    target: str = "label_logical"
    """Index column with the step label."""
    positive: bool | float | str = False
    """The target value that means "wrong" (``label_logical == False``: a fresh error; 1.0 for 0/1 columns)."""
    epochs: int = 30
    """Most passes over the training traces."""
    batch_size: int = 32
    """Traces per optimiser step."""
    lr: float = 5e-4
    """AdamW learning rate (UHeads' released config)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    pos_weight: float = 3.0
    """BCE weight of wrong steps (UHeads: 3)."""
    patience: int = 5
    """Stop after this many epochs without a better validation score."""
    monitor: str = "pr_auc"
    """Validation score for early stopping: pr_auc, roc_auc (higher is better) or loss."""
    seed: int = 0
    """Initialisation and shuffling seed."""
    device: str | None = None
    """cpu or cuda; None: cuda when present."""
    progress: bool = True
    """Show a progress bar over epochs."""

    def __post_init__(self) -> None:
        if self.monitor not in ("pr_auc", "roc_auc", "loss"):
            raise ValueError(f"monitor={self.monitor!r}: choose pr_auc, roc_auc or loss")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")


@dataclass(frozen=True, kw_only=True)
class HeadTrainResult:
    path: Path
    head: UncertaintyHead
    history: pd.DataFrame
    """One row per epoch: ``epoch, train_loss, val_loss, val_roc_auc, val_pr_auc, seconds``."""
    best_epoch: int
    resumed_from: int
    """Epochs already done when this call started (0: a fresh run)."""


def _atomic_json(path: Path, obj: dict) -> None:
    atomic_write_json(path, obj, indent=2, sort_keys=True, default=str)


def _atomic_save(path: Path, tensors: dict) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))


@torch.no_grad()
def score_sequences(head: UncertaintyHead, seqs: list[TraceSequence], batch_size: int = 64) -> pd.DataFrame:
    """Per step: ``trace_id, problem_id, step_index, head_score`` (logit), ``head_prob`` and ``y`` (label or NaN)."""
    head.eval()
    dev = next(head.parameters()).device
    rows = []
    for i in range(0, len(seqs), batch_size):
        part = seqs[i : i + batch_size]
        b = collate(part)
        z = head(b.feats.to(dev), b.token_step.to(dev), b.in_step.to(dev), b.labels.shape[1]).cpu()
        for j, s in enumerate(part):
            n = len(s.labels)
            rows.append(
                pd.DataFrame(
                    {"trace_id": s.trace_id, "problem_id": s.problem_id, "step_index": s.step_index,
                     "head_score": z[j, :n].numpy(), "head_prob": torch.sigmoid(z[j, :n]).numpy(),
                     "y": s.labels.numpy()}
                )
            )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def score_steps(head: UncertaintyHead, store, steps: pd.DataFrame | None = None) -> pd.DataFrame:
    """Head scores of ``steps`` (default: every step with token features) of a store; see :func:`score_sequences`."""
    steps = store.index if steps is None else steps
    return score_sequences(head, load_sequences(store, steps, head.cfg, target=None))


def _val_metrics(head, seqs, pos_weight: float) -> dict:
    df = score_sequences(head, seqs).dropna(subset=["y"])
    y, z = df["y"].to_numpy(), df["head_score"].to_numpy()
    loss = F.binary_cross_entropy_with_logits(
        torch.as_tensor(np.array(z)),
        torch.as_tensor(np.array(y)),
        pos_weight=torch.tensor(pos_weight, dtype=torch.float64),
    ).item()
    both = 0 < y.sum() < len(y)
    roc = float(roc_auc_score(y, z)) if both else float("nan")
    pr = float(average_precision_score(y, z)) if both else float("nan")
    return {"val_loss": loss, "val_roc_auc": roc, "val_pr_auc": pr}


def _better(cur: float, best: float, monitor: str) -> bool:
    if np.isnan(cur):
        return False
    return cur < best - 1e-6 if monitor == "loss" else cur > best + 1e-6


def _load_checkpoint(ck: Path, cfg: HeadConfig, tcfg: HeadTrainConfig, head, opt) -> dict | None:
    state_path = ck / "state.json"
    if not state_path.is_file():
        return None
    state = json.loads(state_path.read_text())
    free = ("epochs", "patience", "progress", "device")  # may change between a run and its resumption
    same = {k: v for k, v in asdict(tcfg).items() if k not in free} == {
        k: v for k, v in state["train"].items() if k not in free
    }
    if state["head"] != cfg.to_json() or not same:
        raise ValueError(f"{ck} holds a run with other settings; use another --out or delete the checkpoint")
    head.load_state_dict(load_file(str(ck / "last.safetensors")))
    opt.load_state_dict(torch.load(ck / "optim.pt", weights_only=True))
    return state


def train_head(
    store,
    out: str | os.PathLike,
    cfg: HeadConfig | None = None,
    train: HeadTrainConfig | None = None,
    *,
    splits: dict[str, pd.DataFrame] | None = None,
) -> HeadTrainResult:
    """Train a head on ``splits["train"]``, stop early on ``splits["val"]`` (default: ``store.split()``)."""
    cfg, train = cfg or HeadConfig(), train or HeadTrainConfig()
    splits = splits if splits is not None else store.split()
    if not {"train", "val"} <= set(splits):
        raise ValueError(f"splits has {list(splits)}; it needs 'train' and 'val' (split by problem)")
    shared = set(splits["train"].problem_id.astype(str)) & set(splits["val"].problem_id.astype(str))
    if shared:
        raise ValueError(f"{len(shared)} problems are in both train and val; split by problem (StepStore.split)")
    tr = load_sequences(store, splits["train"], cfg, train.target, train.positive)
    va = load_sequences(store, splits["val"], cfg, train.target, train.positive)
    meta = {
        "store": str(Path(store.root).resolve()),
        "model": store.manifest.get("model", {}),
        "splits": {k: int(v.problem_id.nunique()) for k, v in splits.items()},
    }
    return train_on_sequences(tr, va, out, cfg, train, meta=meta)


def train_on_sequences(
    tr: list[TraceSequence],
    va: list[TraceSequence],
    out: str | os.PathLike,
    cfg: HeadConfig,
    train: HeadTrainConfig,
    *,
    meta: dict | None = None,
) -> HeadTrainResult:
    """The training loop on prepared sequences (any source); resumes from ``out/checkpoint``."""
    out = Path(out)
    dev = torch.device(train.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(train.seed)
    head = UncertaintyHead.build(cfg, tr[0].feats.shape[1])
    feats = torch.cat([s.feats for s in tr])
    head.set_normalisation(feats.mean(0), feats.std(0))  # training tokens only
    head.to(dev)
    opt = torch.optim.AdamW(head.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    ck = out / "checkpoint"
    ck.mkdir(parents=True, exist_ok=True)
    state = _load_checkpoint(ck, cfg, train, head, opt) or {
        "epoch": 0, "best": float("inf") if train.monitor == "loss" else -1.0, "best_epoch": -1, "waited": 0,
        "history": [], "head": cfg.to_json(), "train": asdict(train),
    }  # fmt: skip
    resumed = state["epoch"]
    pw = torch.tensor(train.pos_weight, device=dev)
    bar = tqdm(range(resumed, train.epochs), desc="train-head", disable=not train.progress, unit="epoch")
    for epoch in bar:
        if state["waited"] >= train.patience:
            break
        t0 = time.perf_counter()
        head.train()
        order = np.random.default_rng(train.seed + epoch).permutation(len(tr))
        losses = []
        for i in range(0, len(order), train.batch_size):
            b = collate([tr[j] for j in order[i : i + train.batch_size]])
            z = head(b.feats.to(dev), b.token_step.to(dev), b.in_step.to(dev), b.labels.shape[1])
            y = b.labels.to(dev)
            ok = ~torch.isnan(y)
            loss = F.binary_cross_entropy_with_logits(z[ok], y[ok], pos_weight=pw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), **_val_metrics(head, va, train.pos_weight)}
        row["seconds"] = time.perf_counter() - t0
        state["history"].append(row)
        cur = row[f"val_{train.monitor}"]
        if _better(cur, state["best"], train.monitor):
            state.update(best=cur, best_epoch=epoch, waited=0)
            _atomic_save(ck / "best.safetensors", head.state_dict())
        else:
            state["waited"] += 1
        state["epoch"] = epoch + 1
        _atomic_save(ck / "last.safetensors", head.state_dict())
        with atomic_path(ck / "optim.pt") as tmp:
            torch.save(opt.state_dict(), tmp)
        _atomic_json(ck / "state.json", state)  # last: a crash before it repeats this epoch
        bar.set_postfix(val=f"{cur:.3f}", best=f"{state['best']:.3f}")
    bar.close()
    if (ck / "best.safetensors").is_file():
        head.load_state_dict(load_file(str(ck / "best.safetensors")))
    _save_head(out, head, train, state, meta or {})
    return HeadTrainResult(
        path=out, head=head.eval(), history=pd.DataFrame(state["history"]), best_epoch=state["best_epoch"],
        resumed_from=resumed,
    )  # fmt: skip


def _save_head(out: Path, head: UncertaintyHead, train: HeadTrainConfig, state: dict, meta: dict) -> None:
    _atomic_save(out / "head.safetensors", head.state_dict())
    _atomic_json(out / "cfg.json", {"head": head.cfg.to_json(), "n_features": head.n_features})
    best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"]), {})
    manifest = {
        "format": "workbench.uncertainty-head/1",
        **meta,
        "features": [f"tokens/{k}" for k in feature_keys(head.cfg)],
        "train": asdict(train),
        "parameters": sum(p.numel() for p in head.parameters()),
        "best_epoch": state["best_epoch"],
        "metrics": {k: v for k, v in best.items() if k.startswith("val_")},
        "history": state["history"],
        "torch": torch.__version__,
    }
    _atomic_json(out / "manifest.json", manifest)


def load_head(path: str | os.PathLike, device: str | torch.device = "cpu") -> UncertaintyHead:
    """A saved head (``cfg.json`` + ``head.safetensors``), in eval mode."""
    path = Path(path)
    if not (path / "cfg.json").is_file():
        raise FileNotFoundError(f"{path} is not a saved head: no cfg.json")
    info = json.loads((path / "cfg.json").read_text())
    cfg = HeadConfig(**{**info["head"], "hooks": tuple(info["head"]["hooks"])})
    head = UncertaintyHead.build(cfg, info["n_features"])
    head.load_state_dict(load_file(str(path / "head.safetensors")))
    return head.to(device).eval()
