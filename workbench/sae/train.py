"""Training plain step SAEs from a step store: one hook, or one SAE per layer (a sweep).

:func:`train_sae` checks its inputs (store, hook, pooling, rows, NaNs) before writing anything, estimates
sae-lens's input scaling, trains through :mod:`.loop` on ``StepStore.iter_batches`` (seeded, so a resumed
run sees the same batches), and saves ``cfg.json`` + ``sae_weights.safetensors`` (sae-lens's format) and
``manifest.json`` (store, hook, pooling, model provenance, config, scaling factor, history) into ``out``.
:func:`load_sae` reads any SAE this package saved, plain or SSAE.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from workbench.sae.config import SAETrainConfig, SSAEConfig
from workbench.sae.loop import CHECKPOINTS, atomic_write_json, input_stats, run_loop
from workbench.sae.saelens import SAELENS_VERSION, SaeLensEngine, StepSAE, load_saelens
from workbench.store import StepStore, open_store

__all__ = ["TrainedSAE", "train_sae", "train_layers", "load_sae", "MANIFEST_FORMAT", "select_rows", "check_rows"]

MANIFEST_FORMAT = "workbench.step-sae/1"


@dataclass(frozen=True)
class TrainedSAE:
    """A trained step SAE with what it was trained on; ``sae`` encodes and decodes."""

    sae: Any
    """The model: :class:`workbench.sae.saelens.StepSAE` (plain) or :class:`workbench.sae.ssae.ContextSAE`."""
    config: SAETrainConfig
    hook: str
    pooling: str
    history: pd.DataFrame
    """Metrics recorded during training (see :func:`workbench.sae.loop.run_loop`)."""
    manifest: dict
    path: Path | None
    """Where it is saved (None when trained without ``out``)."""
    finished: bool = True
    """False when training stopped early (``stop_after``); call again with the same ``out`` to resume."""

    @property
    def decoder(self) -> Float[Tensor, "d_sae d_model"]:
        return self.sae.decoder


def as_store(store: StepStore | str | os.PathLike) -> StepStore:
    return store if isinstance(store, StepStore) else open_store(store)


def select_rows(store: StepStore, hook: str, pooling: str, rows: pd.DataFrame | None) -> pd.DataFrame:
    """The index rows to train on (captured steps only), after checking that hook and pooling exist."""
    if hook not in store.hooks:
        raise KeyError(f"hook={hook!r} has no step vectors in {store.root}; hooks there: {store.hooks}")
    if pooling not in store.poolings or f"{hook}/{pooling}" not in store.key_specs:
        raise KeyError(f"pooling={pooling!r} is not stored for {hook!r} in {store.root}; poolings: {store.poolings}")
    df = store.index if rows is None else rows
    if "row" not in df.columns:
        raise ValueError("rows must be a slice of store.index (it needs the 'row' column)")
    df = df[df["row"] >= 0]
    if df.empty:
        raise ValueError(f"no captured steps to train on in {store.root} (all selected rows have row == -1)")
    return df


def check_rows(store: StepStore, hook: str, pooling: str, rows: pd.DataFrame, chunk: int = 8192) -> None:
    """Raise if any selected step vector has a NaN or infinity (named by trace and step), reading in chunks."""
    bad: list[int] = []
    for i in range(0, len(rows), chunk):
        part = rows.iloc[i : i + chunk]
        x = store.tensors(hook, pooling, part)
        finite = torch.isfinite(x.float()).all(-1).numpy()
        bad.extend(np.nonzero(~finite)[0] + i)
    if bad:
        where = rows.iloc[bad[:3]]
        first = ", ".join(f"({t!r}, {s})" for t, s in zip(where.trace_id, where.step_index, strict=True))
        raise ValueError(
            f"{len(bad)} step vectors of {hook}/{pooling} in {store.root} contain NaN or inf (first: {first}); "
            "drop them from rows (e.g. rows=store.index[~store.index.trace_id.isin(bad_ids)]) or recapture"
        )


def rows_digest(rows: pd.DataFrame) -> str:
    return hashlib.sha256(np.ascontiguousarray(rows["row"].to_numpy(np.int64)).tobytes()).hexdigest()[:16]


def check_out(out: Path | None, overwrite: bool) -> None:
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out={out} exists and is not a directory")
    if (out / "manifest.json").exists():
        if not overwrite:
            raise FileExistsError(f"out={out} already holds a trained SAE; choose another out or pass overwrite=True")
        for name in ("manifest.json", "cfg.json", "sae_weights.safetensors", CHECKPOINTS):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


def _batches(store: StepStore, hook: str, pooling: str, rows: pd.DataFrame, cfg: SAETrainConfig, in_memory: bool):
    """``skip -> iterator`` of seeded training batches, streamed from the store or from one in-memory tensor.

    Both give identical batches: the in-memory path replays the store's shuffling (one NumPy permutation
    per epoch from ``default_rng(seed)``) on a tensor loaded once; the tests check that they train the
    same weights.
    """
    if not in_memory:

        def stream(skip: int):
            it = store.iter_batches(
                hook, cfg.batch_size, seed=cfg.seed, pooling=pooling, rows=rows, epochs=None, drop_last=True
            )
            return islice(it, skip, None)

        return stream
    data = store.tensors(hook, pooling, rows).float()

    def memory(skip: int):
        def gen():
            rng = np.random.default_rng(cfg.seed)
            n = len(data) - len(data) % cfg.batch_size
            while True:
                order = torch.from_numpy(rng.permutation(len(data)))
                for i in range(0, n, cfg.batch_size):
                    yield data[order[i : i + cfg.batch_size]]

        return islice(gen(), skip, None)

    return memory


def save_trained(out: Path, sae, manifest: dict) -> None:
    """Weights and cfg.json first (each moved into place), the manifest last: it marks a complete SAE."""
    tmp = out / ".tmp-final"
    shutil.rmtree(tmp, ignore_errors=True)
    sae.save(tmp)
    for f in tmp.iterdir():
        os.replace(f, out / f.name)
    tmp.rmdir()
    atomic_write_json(out / "manifest.json", manifest)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)


def base_manifest(store: StepStore, hook: str, pooling: str, rows: pd.DataFrame, cfg: SAETrainConfig) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "kind": "ssae" if isinstance(cfg, SSAEConfig) else "sae",
        "config": cfg.to_json(),
        "store": str(Path(store.root).resolve()),
        "store_fingerprint": store.manifest.get("fingerprint"),
        "model": store.manifest.get("model"),
        "hook": hook,
        "pooling": pooling,
        "n_rows": len(rows),
        "rows_sha256": rows_digest(rows),
        "versions": {"sae_lens": SAELENS_VERSION, "torch": torch.__version__},
    }


def train_sae(
    store: StepStore | str | os.PathLike,
    hook: str,
    config: SAETrainConfig | None = None,
    *,
    pooling: str = "boundary",
    rows: pd.DataFrame | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    in_memory: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    callback: Callable[[int, pd.DataFrame], None] | None = None,
) -> TrainedSAE:
    """Train a plain step SAE (sae-lens architectures) on ``hook``/``pooling`` vectors of ``store``.

    ``rows`` selects steps (a slice of ``store.index``, e.g. the train split); default all captured steps.
    With ``out`` the run checkpoints there and resumes from it when called again with the same arguments;
    the finished SAE is saved there. ``in_memory`` loads the rows once instead of streaming them (same
    batches). ``stop_after`` pauses after that many steps (resume later); ``callback(step, history)`` runs
    at every recorded step.
    """
    cfg = config or SAETrainConfig()
    if isinstance(cfg, SSAEConfig):
        raise TypeError("train_sae trains plain SAEs; use workbench.sae.train_ssae for an SSAEConfig")
    st = as_store(store)
    df = select_rows(st, hook, pooling, rows)
    if cfg.batch_size > len(df):
        raise ValueError(f"batch_size={cfg.batch_size} exceeds the {len(df)} selected steps; lower batch_size")
    check_rows(st, hook, pooling, df)
    out_path = Path(out) if out is not None else None
    check_out(out_path, overwrite)
    d_in = int(st.key_specs[f"{hook}/{pooling}"].shape[-1])
    model = st.manifest.get("model") or {}
    engine = SaeLensEngine(cfg, d_in, {"hook_name": hook, "model_name": str(model.get("model") or model.get("path"))})
    batches = _batches(st, hook, pooling, df, cfg, in_memory)
    stats = input_stats(batches(0), cfg.norm_batches)
    scaling = stats.scaling_factor if cfg.normalize else None
    engine.scaling_factor = scaling
    if cfg.b_dec_init == "mean":
        engine.init_decoder_bias(stats.mean * (scaling or 1.0))
    run_state = {
        "config": cfg.to_json(),
        "store": str(Path(st.root).resolve()),
        "hook": hook,
        "pooling": pooling,
        "rows_sha256": rows_digest(df),
        "scaling_factor": scaling,
    }
    t0 = time.perf_counter()
    result = run_loop(
        engine, batches, cfg, d_sae=cfg.width, out=out_path, run_state=run_state,
        progress=progress, desc=f"{cfg.arch} {hook}", stop_after=stop_after, callback=callback,
    )  # fmt: skip
    manifest = {**base_manifest(st, hook, pooling, df, cfg), "scaling_factor": engine.scaling_factor}
    if not result.finished:
        return TrainedSAE(None, cfg, hook, pooling, result.history, manifest, out_path, finished=False)
    sae = engine.finish()
    manifest.update(
        saelens_architecture=sae.architecture,
        history=result.history.to_dict(orient="records"),
        final=result.history.iloc[-1].to_dict() if len(result.history) else {},
        train_seconds_last_call=round(time.perf_counter() - t0, 3),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    if out_path is not None:
        save_trained(out_path, sae, manifest)
    return TrainedSAE(sae, cfg, hook, pooling, result.history, manifest, out_path)


def train_layers(
    store: StepStore | str | os.PathLike,
    config: SAETrainConfig | None = None,
    *,
    hooks: Sequence[str] | None = None,
    pooling: str = "boundary",
    rows: pd.DataFrame | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, TrainedSAE]:
    """A layer sweep: one SAE per hook (default: every hook of the store), each in ``out/<hook>``.

    All hooks are checked before the first SAE is trained; each gets its own progress line. With ``out``,
    a second call skips the layers already saved there and resumes the interrupted one.
    """
    st = as_store(store)
    hooks = list(hooks) if hooks is not None else st.hooks
    for hook in hooks:
        select_rows(st, hook, pooling, rows)
    root = Path(out) if out is not None else None
    done = {}
    for hook in hooks:
        where = root / hook if root is not None else None
        if where is not None and (where / "manifest.json").exists() and not overwrite:
            done[hook] = load_sae(where)  # finished by an earlier call of the same sweep
            continue
        done[hook] = train_sae(
            st, hook, config, pooling=pooling, rows=rows, out=where, overwrite=overwrite, progress=progress
        )
    return done


def load_sae(path: str | os.PathLike, device: str = "cpu") -> TrainedSAE:
    """Load a step SAE saved by :func:`train_sae` or :func:`workbench.sae.train_ssae`."""
    import json

    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise FileNotFoundError(f"{path} holds no trained step SAE (no manifest.json)")
    manifest = json.loads(mpath.read_text())
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{mpath}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
    if manifest["kind"] == "ssae":
        from workbench.sae.ssae import load_context_sae

        cfg: SAETrainConfig = SSAEConfig.from_json(manifest["config"])
        sae: Any = load_context_sae(path, device=device)
    else:
        cfg = SAETrainConfig.from_json(manifest["config"])
        sae = load_saelens(path, device=device)
    history = pd.DataFrame(manifest.get("history", []))
    return TrainedSAE(sae, cfg, manifest["hook"], manifest["pooling"], history, manifest, path)


__all__ += ["StepSAE", "base_manifest", "as_store", "check_out", "rows_digest", "save_trained"]
