"""Benchmark: step SAEs (sae-lens) and the SSAE on the embedded model's own sampled traces.

    python benchmarks/step_sae.py [--n 1200] [--steps 600] [--out benchmarks/results/step_sae.md]

Samples ``--n`` held-out toy problems at temperature 1 (behaviours are the model's own), labels each step
with the checker, captures the boundary vector of every step at every layer into a store under
``--work`` (reused when it exists), splits by problem (80% train / 20% held out), and reports:

1. FVU / L0 / dead latents on held-out steps for every architecture (ReLU + L1 with RISE's settings,
   TopK with and without aux-k, BatchTopK, JumpReLU) at the middle layer;
2. per layer, the latent that best separates ``wait`` steps (checker kind "wait") and ``check`` steps from
   all others: chosen on the train split, ROC-AUC on the held-out split; controls: the same selection over
   a random TopK dictionary and over the raw residual dimensions (either sign);
3. per layer, the silhouette of behaviour groups among decoder columns (RISE), against shuffled labels;
4. SSAE (previous-step and mean context) against the plain TopK SAE at equal L0 (same k, rows, steps),
   with the FVU a linear map from the context alone reaches;
5. training throughput from the store against the same rows held in memory (same run, same batches).

Without ``--out`` nothing tracked is written (the store and SAEs go under ``--work``, which is ignored).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from workbench.capture import CaptureConfig, capture
from workbench.labels import generate_toy_traces
from workbench.models import load_model
from workbench.sae import (
    SAETrainConfig,
    SSAEConfig,
    behaviour_association,
    behaviour_silhouette,
    context_vectors,
    encode_store,
    evaluate_sae,
    latent_auroc,
    train_sae,
    train_ssae,
)
from workbench.sae.metrics import fvu
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig, load_traces, save_traces

KINDS = ("wait", "check")


def build_store(model, n: int, work: Path) -> Path:
    """Sample, label and capture (each stage reused from ``work`` when already there)."""
    key = hashlib.sha256(f"{model.weights_sha256}:{n}".encode()).hexdigest()[:10]
    traces_path, store_path = work / f"traces-{key}.jsonl", work / f"store-{key}"
    work.mkdir(parents=True, exist_ok=True)
    if traces_path.exists():
        traces = load_traces(traces_path)
    else:
        gen = GenerationConfig(max_new_tokens=200, temperature=1.0, batch_size=64, seed=1)
        traces = generate_toy_traces(model, heldout_problems(TaskConfig(), n), config=gen)
        save_traces(traces, traces_path)
    capture(traces, model, store_path, CaptureConfig(poolings=("boundary",), progress=False))
    return store_path


def arch_configs(args) -> dict[str, SAETrainConfig]:
    base = SAETrainConfig(
        arch="topk", width=args.width, k=args.k, lr=args.lr, batch_size=args.batch_size,
        samples=args.steps * args.batch_size, metrics_every=100, dead_window=args.dead_window, checkpoint_every=10**9,
    )  # fmt: skip
    rise = SAETrainConfig(
        arch="relu", samples=args.rise_steps * 1024, metrics_every=100, dead_window=args.dead_window,
        checkpoint_every=10**9,
    )  # fmt: skip
    return {
        "ReLU + L1 (RISE: 2048 wide, λ 2e-3, lr 1e-4, batch 1024)": rise,
        f"ReLU + L1 (λ {args.l1:g})": replace(base, arch="relu", l1_coefficient=args.l1),
        f"TopK k={args.k}, aux-k": base,
        f"TopK k={args.k}, no aux-k": replace(base, aux_coefficient=0.0),
        f"TopK k={args.k}, aux-k, width {args.width // 2}": replace(base, width=args.width // 2),
        f"BatchTopK k={args.k}, aux-k": replace(base, arch="batchtopk"),
        f"JumpReLU (L0 coefficient {args.l0:g})": replace(base, arch="jumprelu", l0_coefficient=args.l0),
    }


def arch_table(store, hook, cfgs, split) -> tuple[pd.DataFrame, dict]:
    rows, saes = [], {}
    for name, cfg in cfgs.items():
        t0 = time.perf_counter()
        trained = train_sae(store, hook, cfg, rows=split["train"], progress=False)
        ev = evaluate_sae(trained, store, rows=split["test"]).iloc[0]
        last = trained.history.iloc[-1]
        rows.append({"architecture": name, "width": cfg.width, "steps": cfg.steps, "FVU": ev.fvu, "L0": ev.l0,
                     "dead (last window, train)": last.dead_fraction, "never active (held out)": ev.dead_fraction,
                     "max decoder cos": last.max_decoder_cosine, "seconds": time.perf_counter() - t0})  # fmt: skip
        saes[name] = trained
    return pd.DataFrame(rows), saes


def _best_on_train(train_scores: np.ndarray, y_train, test_scores: np.ndarray, y_test) -> tuple[float, int]:
    """Pick the column (latent or signed dimension) with the best train ROC-AUC; its held-out ROC-AUC."""
    aucs = [roc_auc_score(y_train, train_scores[:, j]) if train_scores[:, j].std() > 0 else 0.5
            for j in range(train_scores.shape[1])]  # fmt: skip
    j = int(np.argmax(aucs))
    return float(roc_auc_score(y_test, test_scores[:, j])), j


def random_topk(x: torch.Tensor, mean: torch.Tensor, width: int, k: int, seed: int) -> np.ndarray:
    """Control: TopK codes of a random Gaussian dictionary (no training)."""
    w = torch.randn(x.shape[1], width, generator=torch.Generator().manual_seed(seed))
    pre = ((x - mean) @ w).relu()
    top = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, top.indices, top.values).numpy()


def discovery_table(store, saes: dict, split, args) -> pd.DataFrame:
    rows = []
    for hook, trained in saes.items():
        acts = {s: encode_store(trained, store, rows=split[s]) for s in ("train", "test")}
        x = {s: store.tensors(hook, "boundary", split[s]).float() for s in ("train", "test")}
        mean = x["train"].mean(0)
        rand = {s: random_topk(x[s], mean, args.width, args.k, seed=7) for s in x}
        signed = {s: torch.cat([x[s], -x[s]], 1).numpy() for s in x}
        for kind in KINDS:
            y = {s: (split[s]["label_kind"] == kind).to_numpy() for s in x}
            train_auc = latent_auroc(acts["train"], "label_kind", kind)
            latent = int(train_auc.latent.iloc[0])
            test_auc = latent_auroc(acts["test"], "label_kind", kind).set_index("latent")
            rand_auc, _ = _best_on_train(rand["train"], y["train"], rand["test"], y["test"])
            raw_auc, _ = _best_on_train(signed["train"], y["train"], signed["test"], y["test"])
            rows.append(
                {
                    "hook": hook,
                    "behaviour": kind,
                    "SAE latent (chosen on train)": latent,
                    "SAE held-out AUROC": test_auc.loc[latent, "auroc"],
                    "best held-out AUROC (any latent, optimistic)": test_auc.auroc.max(),
                    "random TopK dictionary": rand_auc,
                    "raw residual dimension": raw_auc,
                    "held-out positives": int(y["test"].sum()),
                }
            )
    return pd.DataFrame(rows)


def silhouette_table(store, saes: dict, split, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for hook, trained in saes.items():
        assoc = behaviour_association(encode_store(trained, store, rows=split["train"]), "label_kind")
        spec = assoc[assoc.specific]
        shuffled = [
            behaviour_silhouette(trained.decoder, spec.assign(behaviour=rng.permutation(spec.behaviour.to_numpy())))
            for _ in range(20)
        ]
        counts = spec.groupby("behaviour").latent.nunique().to_dict()
        rows.append(
            {
                "hook": hook,
                "silhouette (behaviour groups)": behaviour_silhouette(trained.decoder, assoc),
                "shuffled labels (mean of 20)": float(np.nanmean(shuffled)),
                "specific latents per behaviour": ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
            }
        )
    return pd.DataFrame(rows)


def context_only_fvu(store, hook, split, mode) -> float:
    """FVU of the best affine map from the context vector alone (least squares on train, held out)."""

    def xy(s):
        x = store.tensors(hook, "boundary", split[s]).double()
        c = context_vectors(store, hook, "boundary", split[s], mode).double()
        return torch.cat([c, torch.ones(len(c), 1, dtype=c.dtype)], 1), x

    a, b = xy("train")
    w = torch.linalg.lstsq(a, b).solution
    a, b = xy("test")
    return fvu(b, a @ w)


def ssae_table(store, hook, plain, cfg: SAETrainConfig, split) -> pd.DataFrame:
    ev = evaluate_sae(plain, store, rows=split["test"]).iloc[0]
    rows = [{"model": f"plain TopK SAE (k={cfg.k})", "FVU": ev.fvu, "L0": ev.l0, "context-only FVU": np.nan}]
    for mode in ("previous", "mean"):
        scfg = SSAEConfig(**{**{k: v for k, v in cfg.to_json().items() if k not in ("kind", "arch")}, "context": mode})
        trained = train_ssae(store, hook, scfg, rows=split["train"], progress=False)
        ev = evaluate_sae(trained, store, rows=split["test"]).iloc[0]
        rows.append({"model": f"SSAE, {mode} context (TopK k={cfg.k})", "FVU": ev.fvu, "L0": ev.l0,
                     "context-only FVU": context_only_fvu(store, hook, split, mode)})  # fmt: skip
    return pd.DataFrame(rows)


def speed_table(store, hook, cfg: SAETrainConfig, split, rounds: int = 3, steps: int = 100) -> pd.DataFrame:
    cfg = replace(cfg, samples=cfg.batch_size * steps, metrics_every=10**6)
    times = {"store": [], "memory": []}
    for _ in range(rounds):  # interleaved: the machine is shared, so load drifts during the run
        for source in times:
            t0 = time.perf_counter()
            train_sae(store, hook, cfg, rows=split["train"], progress=False, in_memory=source == "memory")
            times[source].append(time.perf_counter() - t0)
    rate = {s: cfg.samples / float(np.median(t)) for s, t in times.items()}
    return pd.DataFrame(
        [{"source": s, "median seconds": float(np.median(times[s])), "samples/s": rate[s],
          "vs memory": rate[s] / rate["memory"]} for s in times]
    )  # fmt: skip


def md(df: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False))


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1200, help="problems sampled at temperature 1")
    p.add_argument("--steps", type=int, default=600, help="optimiser steps per SAE (except RISE's)")
    p.add_argument("--rise-steps", type=int, default=150, help="optimiser steps of the RISE ReLU SAE (batch 1024)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--l0", type=float, default=1.0, help="JumpReLU L0 coefficient")
    p.add_argument("--l1", type=float, default=4.0, help="L1 coefficient of the second (tuned) ReLU SAE")
    p.add_argument("--dead-window", type=int, default=50_000, help="samples without firing before a latent is dead")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--work", default="artifacts/runs/step_sae", help="where traces and the store go (ignored by git)")
    p.add_argument("--out", default=None, help="write the markdown here (e.g. benchmarks/results/step_sae.md)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = load_model(args.model, device="cpu")
    store = open_store(build_store(model, args.n, Path(args.work)))
    captured = store.index[store.index.row >= 0]
    split = {k: v[v.row >= 0] for k, v in store.split({"train": 0.8, "test": 0.2}, seed=0, index=captured).items()}
    hooks = store.hooks
    mid = f"blocks.{model.n_layers // 2}.hook_resid_post"
    t_data = time.time() - t0

    cfgs = arch_configs(args)
    archs, saes = arch_table(store, mid, cfgs, split)
    topk_cfg = cfgs[f"TopK k={args.k}, aux-k"]
    layer_saes = {h: saes[f"TopK k={args.k}, aux-k"] if h == mid else
                  train_sae(store, h, topk_cfg, rows=split["train"], progress=False) for h in hooks}  # fmt: skip
    layer_fvu = pd.DataFrame([evaluate_sae(s, store, rows=split["test"]).iloc[0] for s in layer_saes.values()])
    discovery = discovery_table(store, layer_saes, split, args)
    silhouettes = silhouette_table(store, layer_saes, split)
    ssae = ssae_table(store, mid, layer_saes[mid], topk_cfg, split)
    speed = speed_table(store, mid, topk_cfg, split)

    kinds = captured.label_kind.value_counts().to_dict()
    layer_fvus = ", ".join(f"{r.hook.split('.')[1]}: {r.fvu:.3f}" for r in layer_fvu.itertuples())
    cpu = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, {args.threads} torch thread(s)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cmd = " ".join(["python benchmarks/step_sae.py", *(argv if argv is not None else __import__("sys").argv[1:])])
    text = f"""# Step SAEs on the embedded model (sae-lens architectures and SSAE)

- date: {datetime.date.today().isoformat()}; {time.time() - t0:.0f} s in all ({t_data:.0f} s sampling + capture)
- machine: {cpu}, torch {torch.__version__}; load average {load:.1f} at the end (shared with other jobs)
- model: `{model.resolved.path.name}`, weights sha256 `{model.weights_sha256[:12]}`, {model.n_layers} layers
- command: `{cmd}`
- data: {args.n} held-out problems sampled at temperature 1; {len(captured)} steps
  ({", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))}); boundary vector of each step at every layer;
  split by problem: {len(split["train"])} train / {len(split["test"])} held-out steps. All metrics below
  are on held-out steps unless a column says otherwise.

## 1. Architectures at the middle layer (`{mid}`)

{md(archs)}

"Dead (last window)" is the share of latents that did not fire on the last {args.dead_window:,} training
samples; "never active" counts latents silent on every held-out step. TopK/BatchTopK/JumpReLU: width
{args.width}, batch {args.batch_size}, lr {args.lr}, 10% warm-up then cosine.

## 2. Unsupervised discovery: one latent against `wait` / `check` steps, per layer (TopK k={args.k})

{md(discovery)}

Held-out FVU of the TopK SAE per layer: {layer_fvus}.

## 3. Decoder geometry: silhouette of behaviour groups (RISE), per layer

{md(silhouettes)}

Each train step is linked to its most active latent; latents whose steps all share one checker kind are
"specific"; the silhouette (cosine distance) is over the decoder columns of specific latents grouped by
kind. The control shuffles the kinds among the same columns.

## 4. SSAE vs plain SAE at equal L0 (`{mid}`, same rows, same steps)

{md(ssae)}

"Context-only FVU": a least-squares affine map from the context vector alone (no code), fit on train.

## 5. Training from the store vs from memory (`{mid}`, TopK, 100 steps, median of 3 interleaved runs)

{md(speed)}
"""
    print(text)
    if args.out:
        out = Path(args.out)
        tmp = out.with_name(f".tmp-{out.name}.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, out)
    return text


if __name__ == "__main__":
    main()
