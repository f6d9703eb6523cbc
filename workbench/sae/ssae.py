"""SSAE, activation-space variant: a step SAE that is told the context, so its code carries what is new.

SSAE (arXiv 2603.03031) encodes a step *given its context* and lets the decoder see the context freely,
so only the step's new information has to pass the sparse code. On a frozen model's step vectors
(the variant here) that becomes::

    code  = sparsify(ReLU([x - b_dec, c] @ W_enc + b_enc))           # x: step vector, c: context vector
    x_hat = code @ W_dec + c @ W_ctx + b_dec

with the context ``c`` the previous step's vector or the mean of all previous steps of the trace (zeros
for a trace's first step). Sparsity is TopK, or SSAE's scheme: an L1 penalty on the L2-normalised code
(scale-free: it equals sqrt(k) for k equally active latents) whose weight is multiplied by 1.01 or 0.99
every ``adapt_every`` batches, towards a target of sqrt(k); the decoder gets the unnormalised code.
Gaussian noise (sigma 0.01) is added to the code in training. TopK runs use sae-lens's aux-k recipe for
dead latents (top k_aux dead pre-activations reconstruct the residual), re-implemented here.

Inputs are scaled like sae-lens's plain SAEs (mean norm sqrt(d_model)); the factor is folded into the
saved weights. Saved as ``cfg.json`` + ``sae_weights.safetensors`` + ``manifest.json``; sae-lens cannot
load it (its architecture ``workbench_ssae`` is ours). Context vectors and step vectors of the selected
rows are held in memory (2 x rows x d_model floats) while training.
"""

from __future__ import annotations

import json
import math
import os
import time
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from workbench.sae.config import SSAEConfig
from workbench.sae.loop import StepOutput, input_stats, run_loop
from workbench.sae.train import (
    TrainedSAE,
    as_store,
    base_manifest,
    check_out,
    check_rows,
    rows_digest,
    save_trained,
    select_rows,
)
from workbench.store import StepStore

__all__ = ["ContextSAE", "ContextBatch", "context_vectors", "train_ssae", "load_context_sae", "ARCHITECTURE"]

ARCHITECTURE = "workbench_ssae"


class ContextBatch(NamedTuple):
    """Step vectors and their context vectors, row for row."""

    x: Float[Tensor, "batch d_model"]
    context: Float[Tensor, "batch d_model"]


class ContextSAE(nn.Module):
    """The SSAE module: encoder over [step, context], decoder from code plus context."""

    needs_context = True

    def __init__(self, d_in: int, d_sae: int, *, sparsity: str = "topk", k: int = 16) -> None:
        super().__init__()
        self.d_in, self.d_sae, self.sparsity, self.k = d_in, d_sae, sparsity, k
        w_dec = nn.functional.normalize(torch.randn(d_sae, d_in), dim=-1) * 0.1  # sae-lens's heuristic init
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(torch.cat([w_dec.T.clone(), torch.zeros(d_in, d_sae)]))  # [2 d_model, d_sae]
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_ctx = nn.Parameter(torch.zeros(d_in, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))

    @property
    def decoder(self) -> Float[Tensor, "d_sae d_model"]:
        return self.W_dec.detach()

    def pre_acts(self, x: Float[Tensor, "batch d_model"], context: Float[Tensor, "batch d_model"]) -> Tensor:
        return torch.cat([x - self.b_dec, context], dim=-1) @ self.W_enc + self.b_enc  # [batch, d_sae]

    def sparsify(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        acts = pre.relu()
        if self.sparsity != "topk":
            return acts
        top = acts.topk(self.k, dim=-1)
        return torch.zeros_like(acts).scatter(-1, top.indices, top.values)

    def encode(self, x: Float[Tensor, "batch d_model"], context: Float[Tensor, "batch d_model"]) -> Tensor:
        with torch.no_grad():
            return self.sparsify(self.pre_acts(x.to(self.W_dec), context.to(self.W_dec)))

    def decode_train(self, acts: Tensor, context: Tensor) -> Float[Tensor, "batch d_model"]:
        return acts @ self.W_dec + context @ self.W_ctx + self.b_dec

    def decode(self, acts: Float[Tensor, "batch d_sae"], context: Float[Tensor, "batch d_model"]) -> Tensor:
        with torch.no_grad():
            return self.decode_train(acts.to(self.W_dec), context.to(self.W_dec))

    @torch.no_grad()
    def fold_scaling(self, s: float) -> None:
        """Trained on (s x, s c): absorb s so that raw vectors give the same code and x_hat / s."""
        self.W_enc.mul_(s)
        self.W_dec.div_(s)
        self.b_dec.div_(s)

    def cfg_json(self) -> dict[str, Any]:
        return {
            "architecture": ARCHITECTURE,
            "d_in": self.d_in,
            "d_sae": self.d_sae,
            "sparsity": self.sparsity,
            "k": self.k,
            "dtype": "float32",
            "note": "workbench SSAE; sae-lens cannot load this architecture",
        }

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(weights, str(path / "sae_weights.safetensors"))
        (path / "cfg.json").write_text(json.dumps(self.cfg_json(), indent=2))


def load_context_sae(path: str | os.PathLike, device: str = "cpu") -> ContextSAE:
    path = Path(path)
    cfg = json.loads((path / "cfg.json").read_text())
    if cfg.get("architecture") != ARCHITECTURE:
        raise ValueError(f"{path}/cfg.json: architecture {cfg.get('architecture')!r} is not {ARCHITECTURE!r}")
    sae = ContextSAE(cfg["d_in"], cfg["d_sae"], sparsity=cfg["sparsity"], k=cfg["k"])
    sae.load_state_dict(load_file(str(path / "sae_weights.safetensors")))
    return sae.to(device).eval()


def context_vectors(
    store: StepStore, hook: str, pooling: str, rows: pd.DataFrame, mode: str = "previous"
) -> Float[Tensor, "step d_model"]:
    """The context vector of each step in ``rows`` (same order): previous step's vector or mean of all
    previous steps of its trace (captured steps only), zeros for the first. Reads whole traces."""
    if mode not in ("previous", "mean"):
        raise ValueError(f"mode={mode!r}: use 'previous' or 'mean'")
    idx = store.index
    full = idx[(idx["row"] >= 0) & idx["trace_id"].isin(rows["trace_id"].unique())]
    full = full.sort_values(["trace_id", "step_index"], kind="stable").reset_index(drop=True)
    x = store.tensors(hook, pooling, full).double()
    pos = full.groupby("trace_id", sort=False).cumcount().to_numpy()
    prev = np.arange(len(full)) - 1
    if mode == "previous":
        ctx = torch.where(torch.from_numpy(pos > 0)[:, None], x[np.maximum(prev, 0)], x.new_zeros(()))
    else:
        csum = torch.cat([torch.zeros(1, x.shape[1], dtype=x.dtype), x.cumsum(0)])  # csum[i] = sum of x[:i]
        start = np.arange(len(full)) - pos
        ctx = (csum[np.arange(len(full))] - csum[start]) / torch.from_numpy(np.maximum(pos, 1))[:, None]
    where = pd.Series(np.arange(len(full)), index=pd.MultiIndex.from_frame(full[["trace_id", "step_index"]]))
    take = np.array(where.loc[list(zip(rows["trace_id"], rows["step_index"], strict=True))].to_numpy())
    return ctx[torch.from_numpy(take)].float()


class SSAEEngine:
    """Trains a :class:`ContextSAE` one batch at a time (the :class:`workbench.sae.loop.Engine` protocol)."""

    def __init__(self, cfg: SSAEConfig, d_in: int) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.sae = ContextSAE(d_in, cfg.width, sparsity=cfg.sparsity, k=cfg.k).to(cfg.device)
        self.noise = torch.Generator(device=cfg.device).manual_seed(cfg.seed + 1)
        self.optimizer = torch.optim.Adam(self.sae.parameters(), lr=cfg.lr)
        warm, total = cfg.warmup_steps, cfg.steps
        floor = cfg.lr_end / cfg.lr

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if cfg.schedule == "constant":
                return 1.0
            progress = (step - warm) / max(1, total - warm)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.scaling_factor: float | None = None
        self.l1_weight = cfg.l1_coefficient
        self.l1_window: list[float] = []
        self.steps_since_fired = torch.zeros(cfg.width, dtype=torch.int64)
        self.dead_steps = max(1, math.ceil(cfg.dead_window / cfg.batch_size))
        self.n_steps = 0

    def _aux_k(self, x: Tensor, x_hat: Tensor, pre: Tensor) -> Tensor:
        """sae-lens's aux-k: the top k_aux dead latents reconstruct the residual of the live ones."""
        dead = (self.steps_since_fired > self.dead_steps).to(pre.device)
        n_dead = int(dead.sum())
        if self.cfg.sparsity != "topk" or n_dead == 0 or self.cfg.aux_coefficient == 0:
            return x.new_zeros(())
        k_aux = min(x.shape[-1] // 2, n_dead)
        masked = torch.where(dead[None], pre, -torch.inf).topk(k_aux, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, masked.indices, masked.values)
        residual = (x - x_hat).detach()
        scale = min(n_dead / (x.shape[-1] // 2), 1.0)
        return self.cfg.aux_coefficient * scale * (acts @ self.sae.W_dec - residual).pow(2).sum(-1).mean()

    def step(self, batch: ContextBatch) -> StepOutput:
        s = self.scaling_factor or 1.0
        x, ctx = batch.x.to(self.cfg.device) * s, batch.context.to(self.cfg.device) * s
        pre = self.sae.pre_acts(x, ctx)
        acts = self.sae.sparsify(pre)
        noisy = acts + self.cfg.code_noise * torch.randn(acts.shape, generator=self.noise, device=acts.device)
        x_hat = self.sae.decode_train(noisy, ctx)
        mse = (x_hat - x).pow(2).sum(-1).mean()
        losses = {"mse_loss": mse}
        if self.cfg.sparsity == "adaptive_l1":
            l1 = (acts / (acts.norm(dim=-1, keepdim=True) + 1e-8)).sum(-1).mean()
            losses["l1_loss"] = self.l1_weight * l1
            self.l1_window.append(float(l1.detach()))
        else:
            losses["auxiliary_reconstruction_loss"] = self._aux_k(x, x_hat, pre)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(self.sae.parameters(), 1.0)  # as sae-lens's trainer
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.n_steps += 1
        fired = (acts != 0).any(0).cpu()
        self.steps_since_fired += 1
        self.steps_since_fired[fired] = 0
        if self.cfg.sparsity == "adaptive_l1" and self.n_steps % self.cfg.adapt_every == 0:
            self.l1_weight *= 1.01 if np.mean(self.l1_window) > self.cfg.target_l1 else 0.99
            self.l1_window = []
        out = {k: float(v.detach()) for k, v in losses.items()}
        extras = {"l1_weight": self.l1_weight} if self.cfg.sparsity == "adaptive_l1" else {}
        return StepOutput(sae_in=x, sae_out=x_hat.detach(), feature_acts=acts.detach(), losses=out, extras=extras)

    @property
    def decoder(self) -> Tensor:
        return self.sae.decoder

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def weights(self) -> dict[str, Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.sae.state_dict().items()}

    def trainer_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "noise": self.noise.get_state(),
            "l1_weight": self.l1_weight,
            "l1_window": torch.tensor(self.l1_window, dtype=torch.float64),
            "steps_since_fired": self.steps_since_fired,
            "n_steps": self.n_steps,
        }

    def load(self, weights: dict[str, Tensor], state: dict[str, Any]) -> None:
        self.sae.load_state_dict(weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.noise.set_state(state["noise"])
        self.l1_weight = float(state["l1_weight"])
        self.l1_window = state["l1_window"].tolist()
        self.steps_since_fired = state["steps_since_fired"]
        self.n_steps = int(state["n_steps"])

    def finish(self) -> ContextSAE:
        if self.scaling_factor is not None:
            self.sae.fold_scaling(self.scaling_factor)
            self.scaling_factor = None
        return self.sae.eval()


def _pair_batches(x: Tensor, ctx: Tensor, cfg: SSAEConfig):
    """``skip -> iterator`` of seeded (x, context) batches (one permutation per epoch, full batches only)."""

    def batches(skip: int):
        def gen():
            rng = np.random.default_rng(cfg.seed)
            n = len(x) - len(x) % cfg.batch_size
            while True:
                order = torch.from_numpy(rng.permutation(len(x)))
                for i in range(0, n, cfg.batch_size):
                    sel = order[i : i + cfg.batch_size]
                    yield ContextBatch(x[sel], ctx[sel])

        return islice(gen(), skip, None)

    return batches


def train_ssae(
    store: StepStore | str | os.PathLike,
    hook: str,
    config: SSAEConfig | None = None,
    *,
    pooling: str = "boundary",
    rows: pd.DataFrame | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainedSAE:
    """Train an SSAE (activation-space) on ``hook``/``pooling`` step vectors with their context vectors.

    Arguments as :func:`workbench.sae.train_sae`; the same checks run before anything is written.
    """
    cfg = config or SSAEConfig()
    if not isinstance(cfg, SSAEConfig):
        raise TypeError("train_ssae needs an SSAEConfig; plain SAEs train with workbench.sae.train_sae")
    st = as_store(store)
    df = select_rows(st, hook, pooling, rows)
    if cfg.batch_size > len(df):
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {len(df)} selected steps; lower batch_size")
    check_rows(st, hook, pooling, df)
    out_path = Path(out) if out is not None else None
    check_out(out_path, overwrite)
    x = st.tensors(hook, pooling, df).float()
    ctx = context_vectors(st, hook, pooling, df, cfg.context)
    engine = SSAEEngine(cfg, x.shape[-1])
    batches = _pair_batches(x, ctx, cfg)
    stats = input_stats((b.x for b in batches(0)), cfg.norm_batches)
    engine.scaling_factor = stats.scaling_factor if cfg.normalize else None
    if cfg.b_dec_init == "mean":
        with torch.no_grad():
            engine.sae.b_dec.copy_(stats.mean * (engine.scaling_factor or 1.0))
    run_state = {"config": cfg.to_json(), "store": str(Path(st.root).resolve()), "hook": hook, "pooling": pooling,
                 "rows_sha256": rows_digest(df), "scaling_factor": engine.scaling_factor}  # fmt: skip
    result = run_loop(
        engine, batches, cfg, d_sae=cfg.width, out=out_path, run_state=run_state,
        progress=progress, desc=f"ssae {hook}", stop_after=stop_after,
    )  # fmt: skip
    manifest = {**base_manifest(st, hook, pooling, df, cfg), "scaling_factor": engine.scaling_factor}
    if not result.finished:
        return TrainedSAE(None, cfg, hook, pooling, result.history, manifest, out_path, finished=False)
    sae = engine.finish()
    manifest.update(
        architecture=ARCHITECTURE,
        history=result.history.to_dict(orient="records"),
        final=result.history.iloc[-1].to_dict() if len(result.history) else {},
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if out_path is not None:
        save_trained(out_path, sae, manifest)
    return TrainedSAE(sae, cfg, hook, pooling, result.history, manifest, out_path)
