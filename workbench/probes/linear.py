"""Linear probes on step vectors, and the layer sweep: one probe per read-out, all fitted as one batched problem.

A read-out is a (hook, pooling) pair of a store, or any ``[step, d]`` tensor (SAE feature activations, several
layers concatenated). Logistic (binary), softmax (multiclass) and ridge (regression) probes are fitted in
torch on a ``[readout, step, d]`` stack: the losses of the read-outs are summed, and because they share no
parameter the joint optimum is each read-out's own optimum. L-BFGS with a strong-Wolfe line search then
fits every layer in one loop of batched matmuls (``baddbmm``), on the GPU when present; ridge is a batched
closed-form solve. The objective is scikit-learn's — summed loss plus ``l2/2·‖w‖²`` with an unpenalised
intercept, ``l2 = 1/C`` — so the benchmark can check the sweep against ``LogisticRegression`` directly.

Standardisation (on by default) is fitted on the training rows only, per read-out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float
from sklearn.metrics import r2_score
from torch import Tensor

from workbench.probes.data import Standardizer, Target, assert_disjoint, make_target
from workbench.probes.metrics import binary_report

__all__ = [
    "ProbeConfig",
    "LinearProbe",
    "fit_linear",
    "task_metrics",
    "SweepResult",
    "layer_sweep",
    "readout_stack",
    "hook_layer",
]


@dataclass(frozen=True, kw_only=True)
class ProbeConfig:
    """How linear probes are fitted."""

    l2: float = 1.0
    """Weight penalty as scikit-learn's ``1/C``: loss = summed per-step loss + ``l2/2·‖w‖²`` (bias unpenalised)."""
    max_iter: int = 300
    """L-BFGS iterations (logistic / softmax)."""
    tol: float = 1e-5
    """Stop when the largest gradient entry of the mean loss falls below this."""
    standardize: bool = True
    """Scale every feature to mean 0 / std 1 using training rows only."""
    device: str | None = None
    """cpu or cuda; None: cuda when present."""
    float64: bool = False
    """Fit in float64 (slower; for exact agreement checks)."""

    def __post_init__(self) -> None:
        if self.l2 < 0 or self.max_iter < 1 or self.tol <= 0:
            raise ValueError(
                f"l2={self.l2}, max_iter={self.max_iter}, tol={self.tol}: need l2 >= 0, max_iter >= 1, tol > 0"
            )

    def resolve_device(self) -> torch.device:
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))


@dataclass(frozen=True, kw_only=True)
class LinearProbe:
    """Fitted linear probes, one per read-out: ``scores(x) = standardize(x) @ weight + bias``."""

    task: str
    weight: Float[Tensor, "readout d out"]
    bias: Float[Tensor, "readout out"]
    standardizer: Standardizer
    classes: tuple = ()

    @torch.no_grad()
    def scores(self, x: Float[Tensor, "readout n d"] | Float[Tensor, "n d"]) -> Tensor:
        """Logits (binary: ``[readout, n]``, the score of "positive"), class logits, or regression predictions."""
        single = x.dim() == 2
        xs = x.unsqueeze(0) if single else x
        xs = self.standardizer(xs.to(self.weight))
        z = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight)  # [readout, n, out]
        z = z.squeeze(-1) if self.task != "multiclass" else z
        return z[0] if single else z

    def probabilities(self, x) -> Tensor:
        z = self.scores(x)
        if self.task == "binary":
            return torch.sigmoid(z)
        if self.task == "multiclass":
            return torch.softmax(z, dim=-1)
        raise ValueError("a ridge (regression) probe has no probabilities")


def _lbfgs(xs: Tensor, y: Tensor, task: str, n_out: int, cfg: ProbeConfig) -> tuple[Tensor, Tensor]:
    n_ro, n, d = xs.shape
    w = torch.zeros((n_ro, d, n_out), dtype=xs.dtype, device=xs.device, requires_grad=True)
    b = torch.zeros((n_ro, n_out), dtype=xs.dtype, device=xs.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=cfg.max_iter, tolerance_grad=cfg.tol, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip
    yy = y.expand(n_ro, n) if task == "binary" else y.repeat(n_ro)

    def closure():
        opt.zero_grad()
        z = torch.baddbmm(b.unsqueeze(1), xs, w)  # [readout, n, out]
        if task == "binary":
            loss = F.binary_cross_entropy_with_logits(z.squeeze(-1), yy, reduction="sum")
        else:
            loss = F.cross_entropy(z.reshape(n_ro * n, n_out), yy, reduction="sum")
        loss = (loss + 0.5 * cfg.l2 * w.pow(2).sum()) / n  # mean scale keeps tol comparable across sizes
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _ridge(xs: Tensor, y: Tensor, cfg: ProbeConfig) -> tuple[Tensor, Tensor]:
    n_ro, n, d = xs.shape
    xm, ym = xs.mean(1, keepdim=True), y.mean()
    xc, yc = xs - xm, (y - ym).view(1, n, 1).expand(n_ro, n, 1)
    gram = xc.transpose(1, 2) @ xc + cfg.l2 * torch.eye(d, dtype=xs.dtype, device=xs.device)  # [readout, d, d]
    w = torch.linalg.solve(gram, xc.transpose(1, 2) @ yc)  # [readout, d, 1]
    b = ym - (xm @ w).squeeze(1)  # [readout, 1]
    return w, b


def fit_linear(
    x: Float[Tensor, "readout n d"] | Float[Tensor, "n d"],
    target: Target | np.ndarray,
    cfg: ProbeConfig = ProbeConfig(),
) -> LinearProbe:
    """Fit one probe per read-out of ``x`` on the target values (a :class:`Target` or binary 0/1 labels)."""
    if not isinstance(target, Target):
        y = np.asarray(target, dtype=np.float32)
        target = Target(column="y", task="binary", values=y, classes=(0, 1), keep=np.ones(len(y), bool))
    xs = x.unsqueeze(0) if x.dim() == 2 else x
    if xs.shape[1] != len(target.values):
        raise ValueError(f"x has {xs.shape[1]} rows but the target has {len(target.values)} values")
    if target.task == "binary" and len(np.unique(target.values)) < 2:
        raise ValueError(f"target {target.column!r}: the training rows hold one class only; use more traces")
    dev, dt = cfg.resolve_device(), torch.float64 if cfg.float64 else torch.float32
    xs = xs.to(dev, dt)
    std = Standardizer.fit(xs) if cfg.standardize else Standardizer.identity(xs).to(dev)
    xs = std(xs)
    if target.task == "regression":
        w, b = _ridge(xs, torch.as_tensor(np.array(target.values), device=dev, dtype=dt), cfg)
    else:
        ydt = dt if target.task == "binary" else torch.int64
        n_out = 1 if target.task == "binary" else len(target.classes)
        w, b = _lbfgs(xs, torch.as_tensor(np.array(target.values), device=dev, dtype=ydt), target.task, n_out, cfg)
    return LinearProbe(task=target.task, weight=w, bias=b, standardizer=std, classes=target.classes)


def task_metrics(task: str, y: np.ndarray, pred: Tensor) -> dict:
    """Metrics of one read-out's predictions: binary report, multiclass accuracy + perplexity, or R² + MSE."""
    pred = pred.detach().double().cpu()
    if task == "binary":
        return binary_report(y, pred.numpy(), torch.sigmoid(pred).numpy()).as_dict()
    yt = torch.as_tensor(np.array(y))
    if task == "multiclass":
        ce = F.cross_entropy(pred, yt).item()
        acc = float((pred.argmax(-1) == yt).double().mean())
        return {"n": len(y), "accuracy": acc, "perplexity": float(np.exp(ce))}
    mse = float(((pred - yt.double()) ** 2).mean())
    return {"n": len(y), "mse": mse, "r2": float(r2_score(y, pred.numpy()))}


def hook_layer(hook: str) -> int:
    """The layer number of ``blocks.{i}....`` hook names; -1 for others."""
    m = re.match(r"^blocks\.(\d+)\.", hook)
    return int(m.group(1)) if m else -1


def readout_stack(store, rows: pd.DataFrame, readouts: Sequence[tuple[str, str]]) -> Float[Tensor, "readout n d"]:
    """Step vectors of every (hook, pooling) read-out for ``rows`` of the index, stacked."""
    return torch.stack([store.tensors(h, p, rows).float() for h, p in readouts])


@dataclass(frozen=True, kw_only=True)
class SweepResult:
    """A layer sweep: the metric table, the fitted probes and every evaluated step's score."""

    table: pd.DataFrame
    """One row per (read-out, evaluated split): ``hook, layer, pooling, target, split`` + metric columns."""
    probe: LinearProbe
    """The fitted probes, one per read-out in table order."""
    readouts: tuple[tuple[str, str], ...]
    scores: pd.DataFrame
    """Binary targets: ``trace_id, problem_id, step_index, split, hook, layer, pooling, y, score`` (logit)."""


def layer_sweep(
    store,
    target: str,
    *,
    hooks: Sequence[str] | None = None,
    poolings: Sequence[str] = ("boundary",),
    splits: Mapping[str, pd.DataFrame] | None = None,
    index: pd.DataFrame | None = None,
    positive=True,
    task: str | None = None,
    config: ProbeConfig = ProbeConfig(),
) -> SweepResult:
    """Fit a probe for ``target`` on every (hook, pooling) of ``store`` at once; evaluate on held-out problems.

    ``splits`` maps names to index slices and must contain ``train`` (default: ``store.split`` of the captured
    steps, 80/10/10 by problem); every other split is evaluated. ``index`` restricts the steps (e.g. compute
    steps only) before splitting.
    """
    hooks = list(hooks or store.hooks)
    readouts = tuple((h, p) for p in poolings for h in hooks)
    base = store.index if index is None else index
    base = base[base["row"] >= 0]
    if splits is not None and "train" not in splits:
        raise ValueError(f"splits has {list(splits)}; it needs a 'train' split")
    make_target(base if splits is None else splits["train"], target, task=task, positive=positive)  # fail early
    if splits is None:
        splits = store.split(index=base)
    assert_disjoint(**splits)
    parts = {}
    for name, df in splits.items():
        t = make_target(df, target, task=task, positive=positive)
        parts[name] = (df[t.keep], t)
    train_rows, train_t = parts["train"]
    probe = fit_linear(readout_stack(store, train_rows, readouts), train_t, config)
    rows, scores = [], []
    for name, (df, t) in parts.items():
        if name == "train" or len(df) == 0:
            continue
        if t.task == "multiclass":  # class ids must follow the training classes
            lookup = {c: i for i, c in enumerate(train_t.classes)}
            ok = df[target].astype(str).map(lookup).notna().to_numpy()
            df, t = df[ok], Target(**{**t.__dict__, "values": df[target].astype(str).map(lookup)[ok].to_numpy()})
        z = probe.scores(readout_stack(store, df, readouts))
        for j, (h, p) in enumerate(readouts):
            info = {"hook": h, "layer": hook_layer(h), "pooling": p, "target": target, "split": name}
            rows.append(info | task_metrics(t.task, t.values, z[j]))
            if t.task == "binary":
                keys = df[["trace_id", "problem_id", "step_index"]].reset_index(drop=True)
                scores.append(keys.assign(**info, y=t.values, score=z[j].cpu().numpy()).drop(columns="target"))
    scored = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame()
    return SweepResult(table=pd.DataFrame(rows), probe=probe, readouts=readouts, scores=scored)
