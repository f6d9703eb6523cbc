"""Token-level probes trained as multiple-instance learners: one score per token, the step's score is their max.

A wrong step is often wrong at one token (a sampled digit the model did not expect); pooling the step's
tokens into one vector first (mean, boundary) dilutes that token. A *token probe* instead scores every token
of a step from its hidden states and aggregates the token scores into the step's logit (``max``, a smooth max
``logsumexp``, or ``mean``); it is trained with step labels only (BCE on the aggregated logit), so no token
labels are needed — the multiple-instance setting.

Per-token inputs are the ``tokens/{hook}`` features a store captured for ``hooks``, optionally paired with
the *previous* token's features of ``previous_hooks`` (within the trace; zeros before its first step token).
The pair reads "was this token expected": the previous token's last-layer state holds the model's prediction,
the current token's early-layer state holds what was written. ``bilinear_rank > 0`` adds a low-rank bilinear
term between the two halves — the shape of ``embedding · unembedding`` — to the MLP (or linear) read-out.
Only hidden states go in: no logits, probabilities or entropies.

Standardisation is fitted on training tokens; early stopping and kept weights use validation ROC-AUC (a
validation split made by problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

__all__ = ["AGGREGATES", "TokenProbeConfig", "TokenBags", "TokenProbe", "token_bags", "fit_token_probe", "aggregate"]

AGGREGATES = ("max", "logsumexp", "mean")


@dataclass(frozen=True, kw_only=True)
class TokenProbeConfig:
    """A token-level multiple-instance probe: its inputs, read-out and training."""

    hooks: tuple[str, ...] = ("blocks.3.hook_resid_post",)
    """Hooks whose per-token features (``tokens/{hook}``) of the token itself are used."""
    previous_hooks: tuple[str, ...] = ()
    """Hooks whose features of the *previous* token are appended (empty: none)."""
    hidden: int = 64
    """Width of the per-token MLP's hidden layer; 0 makes the read-out linear."""
    bilinear_rank: int = 0
    """Rank of a bilinear term between previous-token and current-token features (needs previous_hooks)."""
    aggregate: str = "max"
    """How token logits become the step logit: max, logsumexp or mean."""
    dropout: float = 0.1
    """Dropout on the MLP's hidden layer (training only)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-2
    """AdamW weight decay."""
    epochs: int = 60
    """Most passes over the training steps."""
    batch_size: int = 128
    """Steps (bags) per optimiser step."""
    patience: int = 10
    """Stop after this many epochs without a better validation ROC-AUC."""
    pos_weight: float | None = None
    """BCE weight of wrong steps; None: 1."""
    seed: int = 0
    """Initialisation and shuffling seed."""
    device: str | None = None
    """cpu or cuda; None: cuda when present."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", tuple(self.hooks))
        object.__setattr__(self, "previous_hooks", tuple(self.previous_hooks))
        if not self.hooks and not self.previous_hooks:
            raise ValueError("hooks and previous_hooks are both empty: the probe has no input features")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate={self.aggregate!r}: choose one of {AGGREGATES}")
        if self.bilinear_rank < 0 or (self.bilinear_rank and not (self.hooks and self.previous_hooks)):
            raise ValueError(
                f"bilinear_rank={self.bilinear_rank}: must be >= 0, and > 0 needs both hooks and previous_hooks"
            )
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.hidden < 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"hidden={self.hidden}, dropout={self.dropout}: need hidden >= 0, 0 <= dropout < 1")


@dataclass(frozen=True, kw_only=True)
class TokenBags:
    """Steps as bags of tokens: flat token features, each token's bag, and one label per bag."""

    feats: Float[Tensor, "tok feat"]
    """Current-token features (``hooks``) then previous-token features (``previous_hooks``)."""
    bag: Int[Tensor, " tok"]
    """Row of ``steps`` each token belongs to (tokens of a bag are contiguous)."""
    labels: Float[Tensor, " bag"]
    """1 = wrong, 0 = right, NaN = no label."""
    steps: pd.DataFrame
    """``trace_id, problem_id, step_index`` of each bag."""
    n_current: int
    """How many leading feature columns belong to the current token."""

    def subset(self, keep: np.ndarray) -> TokenBags:
        """Only the bags where ``keep`` (a boolean mask over bags) is True, renumbered."""
        keep = np.asarray(keep, dtype=bool)
        new = np.cumsum(keep) - 1
        tok = torch.as_tensor(keep)[self.bag]
        return TokenBags(
            feats=self.feats[tok], bag=torch.as_tensor(new)[self.bag[tok]], labels=self.labels[torch.as_tensor(keep)],
            steps=self.steps[keep].reset_index(drop=True), n_current=self.n_current,
        )  # fmt: skip


def token_bags(
    store, steps: pd.DataFrame, config: TokenProbeConfig, target: str | None = None, positive=True
) -> TokenBags:
    """Token bags of every step of ``steps`` with token features; ``target == positive`` is the wrong class.

    Pass *all* steps of the traces (not only labelled ones) so previous-token features cross step borders
    the way the model saw them; unlabelled steps get NaN labels (drop them with :meth:`TokenBags.subset`).
    """
    keys = list(dict.fromkeys(config.hooks + config.previous_hooks))
    missing = [f"tokens/{k}" for k in keys if f"tokens/{k}" not in store.keys]
    if missing:
        raise KeyError(f"the store has no {missing}; capture with TokenFeatureConfig(hooks=...) including them")
    if target is not None and target not in steps.columns:
        raise KeyError(f"target column {target!r} is not in the index; add it with StepStore.add_labels")
    steps = steps[steps["token_row"] >= 0].sort_values(["trace_id", "step_index"], kind="stable")
    if len(steps) == 0:
        raise ValueError("no steps with token features among the selected rows")
    flat = {k: torch.cat(store.step_tokens(k, steps)).float() for k in keys}
    counts = steps["n_token_rows"].to_numpy(dtype=np.int64, copy=True)
    bag = torch.repeat_interleave(torch.arange(len(steps)), torch.as_tensor(counts))
    cols = [flat[h] for h in config.hooks]
    if config.previous_hooks:
        trace = steps["trace_id"].to_numpy()
        first_of_trace = np.r_[True, trace[1:] != trace[:-1]]
        starts = np.cumsum(counts) - counts
        no_prev = torch.zeros(len(bag), dtype=torch.bool)
        no_prev[torch.as_tensor(starts[first_of_trace])] = True
        for h in config.previous_hooks:
            prev = torch.roll(flat[h], 1, dims=0)
            prev[no_prev] = 0.0
            cols.append(prev)
    if target is None:
        lab = np.full(len(steps), np.nan, dtype=np.float32)
    else:
        col = steps[target]
        lab = np.where(col.isna(), np.nan, (col == positive).astype(np.float32)).astype(np.float32)
    return TokenBags(
        feats=torch.cat(cols, dim=1).nan_to_num(0.0), bag=bag, labels=torch.as_tensor(lab),
        steps=steps[["trace_id", "problem_id", "step_index"]].reset_index(drop=True),
        n_current=sum(flat[h].shape[1] for h in config.hooks),
    )  # fmt: skip


def aggregate(z: Float[Tensor, " tok"], bag: Int[Tensor, " tok"], n_bags: int, how: str) -> Float[Tensor, " bag"]:
    """Per-bag max, logsumexp or mean of token scores (bags without tokens get −inf / NaN)."""
    if how not in AGGREGATES:
        raise ValueError(f"how={how!r}: choose one of {AGGREGATES}")
    if how == "mean":
        s = torch.zeros(n_bags, dtype=z.dtype, device=z.device).index_add(0, bag, z)
        return s / torch.bincount(bag, minlength=n_bags).to(z.dtype)
    m = torch.full((n_bags,), float("-inf"), dtype=z.dtype, device=z.device).scatter_reduce(
        0, bag, z, reduce="amax", include_self=True
    )
    if how == "max":
        return m
    m_ = m.detach().clamp_min(-1e30)
    s = torch.zeros(n_bags, dtype=z.dtype, device=z.device).index_add(0, bag, torch.exp(z - m_[bag]))
    return m_ + torch.log(s)


class TokenProbe(nn.Module):
    """Standardise token features → MLP (or linear) + optional bilinear term → token logit → step logit."""

    def __init__(self, cfg: TokenProbeConfig, n_features: int, n_current: int) -> None:
        super().__init__()
        self.cfg, self.n_current = cfg, n_current
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        if cfg.hidden:
            self.read = nn.Sequential(
                nn.Linear(n_features, cfg.hidden), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, 1)
            )
        else:
            self.read = nn.Linear(n_features, 1)
        if cfg.bilinear_rank:
            self.u = nn.Linear(n_features - n_current, cfg.bilinear_rank, bias=False)
            self.v = nn.Linear(n_current, cfg.bilinear_rank, bias=False)

    def token_logits(self, feats: Float[Tensor, "tok feat"]) -> Float[Tensor, " tok"]:
        x = (feats - self.mean) / self.scale
        z = self.read(x).squeeze(-1)
        if self.cfg.bilinear_rank:
            z = z + (self.u(x[:, self.n_current :]) * self.v(x[:, : self.n_current])).sum(-1)
        return z

    def forward(self, feats: Float[Tensor, "tok feat"], bag: Int[Tensor, " tok"], n_bags: int) -> Float[Tensor, " bag"]:
        return aggregate(self.token_logits(feats), bag, n_bags, self.cfg.aggregate)

    @torch.no_grad()
    def scores(self, bags: TokenBags) -> np.ndarray:
        """Step logits (higher = more likely wrong), one per bag, in eval mode."""
        self.eval()
        dev = self.mean.device
        return self(bags.feats.to(dev), bags.bag.to(dev), len(bags.labels)).cpu().numpy()

    @torch.no_grad()
    def token_scores(self, bags: TokenBags) -> Float[Tensor, " tok"]:
        """Each token's logit: where in the step the probe sees the error."""
        self.eval()
        return self.token_logits(bags.feats.to(self.mean.device)).cpu()


def _bag_batches(bags: TokenBags, order: np.ndarray, batch_size: int) -> Sequence[tuple[Tensor, Tensor, int]]:
    counts = torch.bincount(bags.bag, minlength=len(bags.labels)).numpy()
    starts = np.cumsum(counts) - counts
    out = []
    for i in range(0, len(order), batch_size):
        sel = order[i : i + batch_size]
        tok = np.concatenate([np.arange(starts[b], starts[b] + counts[b]) for b in sel])
        local = np.repeat(np.arange(len(sel)), counts[sel])
        out.append((torch.as_tensor(tok), torch.as_tensor(local), torch.as_tensor(sel)))
    return out


def fit_token_probe(train: TokenBags, val: TokenBags, config: TokenProbeConfig) -> TokenProbe:
    """Train on ``train``'s labelled bags; keep the weights of the best validation ROC-AUC epoch."""
    tr, va = train.subset(~torch.isnan(train.labels).numpy()), val.subset(~torch.isnan(val.labels).numpy())
    for name, b in (("train", tr), ("val", va)):
        if len(b.labels) == 0 or not 0 < float(b.labels.sum()) < len(b.labels):
            raise ValueError(f"{name} needs labelled steps of both classes; got {len(b.labels)} labelled steps")
    if va.steps.problem_id.astype(str).isin(set(tr.steps.problem_id.astype(str))).any():
        raise ValueError("train and val share a problem; split by problem (StepStore.split)")
    dev = torch.device(config.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(config.seed)
    probe = TokenProbe(config, tr.feats.shape[1], tr.n_current)
    probe.mean.copy_(tr.feats.mean(0))
    probe.scale.copy_(tr.feats.std(0).clamp_min(1e-6))
    probe.to(dev)
    feats, y = tr.feats.to(dev), tr.labels.to(dev)
    pw = torch.tensor(config.pos_weight, device=dev) if config.pos_weight else None
    opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    yv = va.labels.numpy()
    best, best_state, waited = -1.0, None, 0
    probe.history = []
    for epoch in range(config.epochs):
        probe.train()
        for tok, local, sel in _bag_batches(tr, rng.permutation(len(tr.labels)), config.batch_size):
            z = probe(feats[tok.to(dev)], local.to(dev), len(sel))
            loss = F.binary_cross_entropy_with_logits(z, y[sel.to(dev)], pos_weight=pw)
            opt.zero_grad()
            loss.backward()
            opt.step()
        auc = float(roc_auc_score(yv, probe.scores(va)))
        probe.history.append({"epoch": epoch, "train_loss": loss.item(), "val_roc_auc": auc})
        if auc > best + 1e-6:
            best, waited = auc, 0
            best_state = {k: v.detach().clone() for k, v in probe.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:
        probe.load_state_dict(best_state)
    return probe.eval()
