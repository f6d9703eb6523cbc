"""The training loop shared by plain step SAEs and the SSAE: metrics, progress bar, checkpoints, resume.

An *engine* (:class:`Engine`: sae-lens's trainer in :mod:`.saelens`, or our SSAE in :mod:`.ssae`) does
one optimisation step per batch; this loop feeds it, records our metrics every ``metrics_every`` steps
into a history table, shows a tqdm bar and writes a checkpoint every ``checkpoint_every`` steps.

Resume: a checkpoint holds the weights (safetensors), the optimiser/schedule/counter state
(``torch.save``, read back with ``weights_only=True``) and ``state.json`` (step, config, history).
Batches come from a seeded iterator, so a resumed run skips the batches already used and continues on
exactly the batches the uninterrupted run would have seen: same seed, same weights. Checkpoints are
written to a temporary directory and renamed into place, so a crash never leaves half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pandas as pd
import torch
from jaxtyping import Float
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from workbench.atomic import atomic_write_json as write_json
from workbench.sae.config import SAETrainConfig
from workbench.sae.metrics import DeadLatentTracker, fvu, l0, max_decoder_cosine

__all__ = [
    "Engine",
    "StepOutput",
    "LoopResult",
    "run_loop",
    "input_stats",
    "InputStats",
    "latest_checkpoint",
    "CHECKPOINTS",
    "atomic_write_json",
]

CHECKPOINTS = "checkpoints"
_TMP = ".tmp-"


class Engine(Protocol):
    """What the loop needs from a trainer (see :class:`workbench.sae.saelens.SaeLensEngine`)."""

    scaling_factor: float | None

    def step(self, batch: Any) -> StepOutput: ...

    @property
    def decoder(self) -> torch.Tensor: ...

    @property
    def lr(self) -> float: ...

    def weights(self) -> dict[str, torch.Tensor]: ...

    def trainer_state(self) -> dict[str, Any]: ...

    def load(self, weights: dict[str, torch.Tensor], state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class StepOutput:
    """What one optimisation step produced (inputs already scaled)."""

    sae_in: Float[Tensor, "batch d_model"]
    sae_out: Float[Tensor, "batch d_model"]
    feature_acts: Float[Tensor, "batch d_sae"]
    losses: dict[str, float]
    extras: dict[str, float] = field(default_factory=dict)
    """Other per-step numbers worth recording (e.g. the SSAE's adaptive L1 weight)."""


@dataclass(frozen=True)
class LoopResult:
    """How a call of :func:`run_loop` ended."""

    history: pd.DataFrame
    """One row per recorded step: step, samples, fvu, l0, dead_fraction, max_decoder_cosine, lr, loss columns."""
    step: int
    """Steps done so far (all calls together)."""
    finished: bool
    """True when every step of the config is done; False when ``stop_after`` ended the call early."""


def atomic_write_json(path: Path, obj: dict) -> None:
    """Write JSON atomically (readers see the old or the new file): :func:`workbench.atomic.atomic_write_json`."""
    write_json(path, obj, indent=2, sort_keys=True, default=str)


class InputStats(NamedTuple):
    """What the first batches say about the inputs."""

    scaling_factor: float
    """sqrt(d_model) / mean input norm: sae-lens's ``expected_average_only_in`` factor."""
    mean: Tensor
    """``[d_model]`` mean input (raw units), the starting decoder bias."""


@torch.no_grad()
def input_stats(batches: Iterator[Tensor], n_batches: int) -> InputStats:
    """Scaling factor and mean of the inputs over the first ``n_batches`` batches.

    The factor uses the formula of sae-lens's ``ActivationScaler.estimate_scaling_factor`` (computed here
    so that no progress bar of its own appears, and so that the SSAE scales its inputs the same way).
    """
    total, count, acc = 0.0, 0, None
    for x in islice(batches, n_batches):
        x = x.double()
        total += float(x.norm(dim=-1).sum())
        acc = x.sum(0) if acc is None else acc + x.sum(0)
        count += x.shape[0]
    if not count or total == 0:
        raise ValueError("cannot estimate the input scaling: no batches, or every step vector is zero")
    return InputStats(acc.shape[0] ** 0.5 / (total / count), (acc / count).float())


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint directory under ``out/checkpoints`` (None when there is none)."""
    root = out / CHECKPOINTS
    found = sorted(p for p in root.glob("step-*") if p.is_dir()) if root.is_dir() else []
    return found[-1] if found else None


def _write_checkpoint(out: Path, engine: Engine, tracker: DeadLatentTracker, step: int, state: dict) -> None:
    root = out / CHECKPOINTS
    final, tmp = root / f"step-{step:09d}", root / f"{_TMP}step-{step:09d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(engine.weights(), str(tmp / "sae_weights.safetensors"))
    torch.save({"engine": engine.trainer_state(), "since_fired": tracker.since_fired}, tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=2, default=str))
    os.replace(tmp, final)
    for old in root.glob("step-*"):  # keep only the newest
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(path: Path, engine: Engine, tracker: DeadLatentTracker) -> dict:
    weights = load_file(str(path / "sae_weights.safetensors"))
    saved = torch.load(path / "trainer_state.pt", weights_only=True)
    engine.load(weights, saved["engine"])
    tracker.since_fired = saved["since_fired"]
    return json.loads((path / "state.json").read_text())


def _record(engine: Engine, out: StepOutput, tracker: DeadLatentTracker, step: int, cfg: SAETrainConfig) -> dict:
    return {
        "step": step,
        "samples": step * cfg.batch_size,
        "fvu": fvu(out.sae_in, out.sae_out),
        "l0": l0(out.feature_acts),
        "dead_fraction": tracker.dead_fraction,
        "max_decoder_cosine": max_decoder_cosine(engine.decoder),
        "lr": engine.lr,
        **{f"loss_{k}": v for k, v in out.losses.items()},
        **out.extras,
    }


def run_loop(
    engine: Engine,
    batches: Callable[[int], Iterator[Any]],
    cfg: SAETrainConfig,
    *,
    d_sae: int,
    out: Path | None,
    run_state: dict,
    progress: bool = True,
    desc: str = "sae",
    stop_after: int | None = None,
    callback: Callable[[int, pd.DataFrame], None] | None = None,
) -> LoopResult:
    """Train ``engine`` for ``cfg.steps`` steps (resuming from ``out``'s checkpoint when there is one).

    ``batches(skip)`` returns the seeded batch iterator with its first ``skip`` batches already consumed.
    ``run_state`` (config, store, hook, rows, scaling factor) is saved in each checkpoint and must match on
    resume. ``stop_after`` ends the call after that many steps in all (a checkpoint is written first).
    ``callback(step, history)`` runs after every recorded step (an exception there stops the run; the last
    checkpoint survives).
    """
    tracker = DeadLatentTracker.create(d_sae, cfg.dead_window)
    records: list[dict] = []
    start = 0
    ckpt = latest_checkpoint(out) if out is not None else None
    if ckpt is not None:
        saved = _load_checkpoint(ckpt, engine, tracker)
        diffs = [k for k in run_state if k != "scaling_factor" and saved["run"].get(k) != run_state[k]]
        if diffs:
            raise ValueError(f"{out} holds a checkpoint of another run (differs in {diffs}); choose a new out")
        start, records = saved["step"], saved["history"]
        engine.scaling_factor = saved["run"]["scaling_factor"]
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    bar = tqdm(total=cfg.steps, initial=start, desc=desc, disable=not progress, unit="step")
    step = start
    try:
        for batch in islice(batches(start), max(0, end - start)):
            result = engine.step(batch)
            tracker.update(result.feature_acts)
            step += 1
            bar.update(1)
            if step % cfg.metrics_every == 0 or step == cfg.steps:
                records.append(_record(engine, result, tracker, step, cfg))
                last = records[-1]
                bar.set_postfix(fvu=f"{last['fvu']:.3f}", l0=f"{last['l0']:.1f}", dead=f"{last['dead_fraction']:.2f}")
                if callback is not None:
                    callback(step, pd.DataFrame(records))
            if out is not None and (step % cfg.checkpoint_every == 0 or step == end) and step < cfg.steps:
                state = {"step": step, "history": records, "run": {**run_state}}
                _write_checkpoint(out, engine, tracker, step, state)
    finally:
        bar.close()
    if step < end:
        raise RuntimeError(f"the batch iterator ran out after {step} of {end} steps")
    return LoopResult(history=pd.DataFrame(records), step=step, finished=step >= cfg.steps)
