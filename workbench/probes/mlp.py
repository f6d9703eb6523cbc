"""The MLP probe: SSAE's 3-layer probe (Linear-ReLU-Linear-ReLU-Linear) on any ``[step, d]`` tensor.

Trained with AdamW (weight decay) on standardised inputs (statistics from the training rows), early stopping
on a validation split that must be made by problem; the weights of the best validation epoch are kept.
Binary targets train with BCE (optionally ``pos_weight``), multiclass with cross-entropy, regression with MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from workbench.probes.data import Standardizer, Target

__all__ = ["MLPProbeConfig", "MLPProbe", "fit_mlp"]


@dataclass(frozen=True, kw_only=True)
class MLPProbeConfig:
    """How the MLP probe is trained."""

    hidden: int = 256
    """Width of both hidden layers."""
    dropout: float = 0.1
    """Dropout after each hidden layer (training only)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    epochs: int = 200
    """Most passes over the training rows."""
    batch_size: int = 256
    """Rows per optimiser step."""
    patience: int = 15
    """Stop after this many epochs without a better validation loss."""
    pos_weight: float | None = None
    """BCE weight of positive rows (binary); None: 1."""
    seed: int = 0
    """Initialisation and shuffling seed."""
    device: str | None = None
    """cpu or cuda; None: cuda when present."""

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout}: must be in [0, 1)")


class MLPProbe(nn.Module):
    """Standardise, then Linear-ReLU-Linear-ReLU-Linear; ``forward`` returns logits / predictions."""

    def __init__(self, d: int, n_out: int, task: str, cfg: MLPProbeConfig, standardizer: Standardizer) -> None:
        super().__init__()
        self.task = task
        self.register_buffer("mean", standardizer.mean.reshape(1, d).float())
        self.register_buffer("scale", standardizer.scale.reshape(1, d).float())
        h = cfg.hidden
        self.net = nn.Sequential(
            nn.Linear(d, h), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(h, h), nn.ReLU(), nn.Dropout(cfg.dropout),
            nn.Linear(h, n_out),
        )  # fmt: skip
        self.history: list[dict] = []

    def forward(self, x: Float[Tensor, "n d"]) -> Tensor:
        z = self.net((x.to(self.mean) - self.mean) / self.scale)
        return z if self.task == "multiclass" else z.squeeze(-1)

    @torch.no_grad()
    def scores(self, x: Float[Tensor, "n d"]) -> Tensor:
        """Logits (binary), class logits, or predictions, in eval mode."""
        self.eval()
        return self(x)


def _loss(task: str, z: Tensor, y: Tensor, pos_weight: Tensor | None) -> Tensor:
    if task == "binary":
        return F.binary_cross_entropy_with_logits(z, y, pos_weight=pos_weight)
    if task == "multiclass":
        return F.cross_entropy(z, y)
    return F.mse_loss(z, y)


def fit_mlp(
    x_train: Float[Tensor, "n d"], train: Target, x_val: Float[Tensor, "m d"], val: Target, cfg: MLPProbeConfig
) -> MLPProbe:
    """Train an MLP probe; ``val`` (held-out problems) decides early stopping and the kept weights."""
    if len(x_train) != len(train.values) or len(x_val) != len(val.values):
        raise ValueError("x_train/x_val rows must match their targets' values")
    dev = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(cfg.seed)
    xt, xv = x_train.float().to(dev), x_val.float().to(dev)
    ydt = torch.int64 if train.task == "multiclass" else torch.float32
    yt, yv = (torch.as_tensor(np.asarray(t.values), dtype=ydt, device=dev) for t in (train, val))
    n_out = len(train.classes) if train.task == "multiclass" else 1
    model = MLPProbe(xt.shape[1], n_out, train.task, cfg, Standardizer.fit(xt)).to(dev)
    pw = torch.tensor(cfg.pos_weight, device=dev) if cfg.pos_weight and train.task == "binary" else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    best, best_state, waited = float("inf"), None, 0
    for epoch in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(cfg.batch_size):
            idx = idx.to(dev)
            loss = _loss(train.task, model(xt[idx]), yt[idx], pw)
            opt.zero_grad()
            loss.backward()
            opt.step()
        val_loss = _loss(train.task, model.scores(xv), yv, pw).item()
        model.history.append({"epoch": epoch, "train_loss": loss.item(), "val_loss": val_loss})
        if val_loss < best - 1e-6:
            best, waited = val_loss, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval()
