"""Steering benchmark on the embedded model: dose-response of `wait`, controls, ablation, confidence, speed.

What it measures, all in one run on the same model (CPU is fine):

1. Reads vectors on *training* problems (a seed range the evaluation never uses): samples traces at
   temperature 1, captures the last layer's boundary vectors, and builds
   - ``dom``: difference of means between steps followed by a ``wait`` line and compute steps followed by a
     compute line (supervised by the checker's step kinds);
   - ``sae``: an unsupervised direction: a TopK SAE (``workbench.sae``) trained on the same boundary
     vectors; RISE's association (each step to its most active latent) labelled by the *next* step's
     kind; the mean unit decoder column of the latents specific to ``wait`` (fallback: the latent with the
     best ROC-AUC for it), rescaled to the ``dom`` norm so both alpha axes mean the same length.
2. Sweeps held-out problems at temperature 1: additive boundary-only steering (written at the same hook,
   on the newline token that ends each generated step) over the alpha grid, with a random direction of
   equal norm in the same sweep; projection ablation (alpha = 1) of both directions and of the random one;
   ``dom`` written at every generated position (where a vector is written matters).
3. Confidence-vector search over the SAE's columns (entropy at step boundaries, through the frozen upper
   layers); mean boundary entropy of held-out traces with and without it; its sweep effect.
4. Speed: steered vs unsteered ``generate`` on the same batches (every row forced to the same length),
   interleaved repeats, median.

Run ``python benchmarks/steering.py`` (prints the report); ``--out benchmarks/results/steering.md``
writes it. Without ``--out`` nothing tracked is written.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.capture import CaptureConfig, capture
from workbench.labels import generate_toy_traces
from workbench.models import load_model
from workbench.sae import (
    SAETrainConfig,
    behaviour_association,
    behaviour_vectors,
    encode_store,
    latent_auroc,
    train_sae,
)
from workbench.sae.analysis import FeatureActivations
from workbench.steering import Additive, Positions, SteeringVector, diff_of_means, load_sae_weights, steer
from workbench.steering.confidence import ConfidenceConfig, boundary_entropy, search
from workbench.steering.sources import with_neighbour_kinds
from workbench.steering.sweep import SweepConfig, run_sweep, summarise
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.evaluate import HELDOUT_SEED, heldout_problems
from workbench.traces import GenerationConfig
from workbench.traces.generate import left_pad

TRAIN_SEED = 70_000  # reading problems: disjoint from the evaluation seeds (HELDOUT_SEED + i)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=400, help="problems whose traces the vectors are read from")
    p.add_argument("--n", type=int, default=150, help="held-out problems per (direction, alpha) cell")
    p.add_argument("--alphas", nargs="+", type=float, default=[-1.0, 0.0, 0.5, 1.0, 2.0])
    p.add_argument("--layer", type=int, default=None, help="layer read and written (default: the last)")
    p.add_argument("--sae-width", type=int, default=64)
    p.add_argument("--sae-k", type=int, default=4)
    p.add_argument("--sae-epochs", type=int, default=60)
    p.add_argument("--conf-steps", type=int, default=60)
    p.add_argument("--conf-traces", type=int, default=100, help="held-out traces for the boundary entropy")
    p.add_argument("--speed-n", type=int, default=64)
    p.add_argument("--speed-tokens", type=int, default=96)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the report here (e.g. benchmarks/results/steering.md)")
    p.add_argument("--summary-csv", default=None, help="also write the tidy summary table here")
    return p.parse_args(argv)


# ---- vectors ---------------------------------------------------------------------------------------


def read_vectors(model, args, work: Path):
    """Training traces -> store -> dom vector and the SAE's unsupervised wait direction."""
    layer = model.n_layers - 1 if args.layer is None else args.layer
    hook = f"blocks.{layer}.hook_resid_post"
    problems = heldout_problems(TaskConfig(), args.n_train, seed=TRAIN_SEED)
    traces = generate_toy_traces(model, problems, config=GenerationConfig(temperature=1.0, max_new_tokens=160))
    capture(traces, model, work / "store", CaptureConfig(layers=(layer,), poolings=("boundary",), progress=False))
    store = open_store(work / "store")
    dom = diff_of_means(store, hook, "next_kind == 'wait'", "kind == 'compute' and next_kind == 'compute'", name="dom")
    n_rows = int((store.index.row >= 0).sum())
    batch = min(256, n_rows)
    cfg = SAETrainConfig(
        arch="topk", width=args.sae_width, k=args.sae_k, batch_size=batch,
        samples=batch * max(1, args.sae_epochs * n_rows // batch), lr=1e-3, metrics_every=50,
        checkpoint_every=10_000,
    )  # fmt: skip
    trained = train_sae(store, hook, cfg, out=work / "sae", in_memory=True, progress=True)
    acts = encode_store(trained, store)
    acts = FeatureActivations(with_neighbour_kinds(acts.steps), acts.codes)
    assoc = behaviour_association(acts, "next_kind")
    bv = behaviour_vectors(trained.decoder, assoc)
    sae_w = load_sae_weights(work / "sae")
    if "wait" in bv.vectors:
        latents = bv.table.set_index("behaviour").loc["wait", "latents"]
        direction, how = bv.vectors["wait"], f"RISE association: latents {list(latents)} specific to next=wait"
    else:
        best = latent_auroc(acts, "next_kind", positive="wait").iloc[0]
        latents = [int(best.latent)]
        direction, how = sae_w.W_dec[latents[0]], f"no latent specific to wait; best ROC-AUC latent {latents[0]}"
    direction = direction / direction.norm()
    sae_vec = SteeringVector(
        vector=direction * dom.scale, hook=hook, name="sae",
        provenance={"source": "sae_behaviour", "sae": str(work / "sae"), "latents": [int(x) for x in latents],
                    "how": how, "read_hook": hook, "pooling": "boundary", "rescaled_to": "dom norm"},
    )  # fmt: skip
    fvu = trained.history.iloc[-1].to_dict() if len(trained.history) else {}
    # read elsewhere: the boundary vectors of the wait steps themselves (same negative group, same norm)
    own = diff_of_means(store, hook, "kind == 'wait'", "kind == 'compute' and next_kind == 'compute'", name="wait_self")
    own = SteeringVector(vector=own.direction * dom.scale, hook=hook, name="wait_self",
                         provenance=own.provenance | {"rescaled_to": "dom norm"})  # fmt: skip
    return store, dom, sae_vec, sae_w, how, fvu, own


# ---- speed -----------------------------------------------------------------------------------------


def speed(model, vec: SteeringVector, args) -> dict:
    """Tokens/s of plain vs boundary-steered sampling on identical batches of fixed length."""
    problems = heldout_problems(TaskConfig(), args.speed_n, seed=HELDOUT_SEED + 50_000)
    rows = model.tokenizer([p.prompt for p in problems], add_special_tokens=False)["input_ids"]
    batches = [left_pad(rows[i : i + 32], model.tokenizer.pad_token_id) for i in range(0, len(rows), 32)]
    kw = dict(do_sample=True, temperature=1.0, top_k=0, max_new_tokens=args.speed_tokens,
              min_new_tokens=args.speed_tokens, use_cache=True)  # fmt: skip
    iv = Additive(vector=vec, alpha=1.0, positions=Positions(kind="boundary", generated_only=True))

    def once(steered: bool) -> float:
        t0 = time.perf_counter()
        for b in batches:
            if steered:
                with steer(model, iv):
                    model.generate(b.input_ids, b.attention_mask, **kw)
            else:
                model.generate(b.input_ids, b.attention_mask, **kw)
        return time.perf_counter() - t0

    once(False), once(True)  # warm-up
    times = {"plain": [], "steered": []}
    for _ in range(args.repeats):
        times["plain"].append(once(False))
        times["steered"].append(once(True))
    n_tok = len(rows) * args.speed_tokens
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"tokens": n_tok, **{f"{k}_s": v for k, v in med.items()},
            "ratio": (n_tok / med["steered"]) / (n_tok / med["plain"])}  # fmt: skip


# ---- report ----------------------------------------------------------------------------------------


def fmt(v: float, lo: float, hi: float, pct: bool = False) -> str:
    if pct:
        return f"{100 * v:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def dose_table(summary: pd.DataFrame) -> str:
    wide = summary.set_index(["vector", "direction", "edit", "positions", "alpha", "metric"])
    lines = ["| vector | direction | edit | written at | α | wait / compute step | check / compute step | "
             "accuracy | wrong-step rate | tokens |", "|---|---|---|---|---:|---|---|---|---|---:|"]  # fmt: skip
    for key in wide.index.droplevel("metric").unique():
        r = wide.loc[key]
        cell = {m: fmt(*r.loc[m, ["value", "lo", "hi"]], pct=m in ("accuracy", "wrong_step_rate")) for m in r.index}
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {key[4]:g} | {cell['wait_rate']} | {cell['check_rate']} | "
            f"{cell['accuracy']} | {cell['wrong_step_rate']} | {r.loc['length', 'value']:.1f} |"
        )
    return "\n".join(lines)


def curve(summary: pd.DataFrame, vector: str, direction: str, metric: str = "wait_rate") -> pd.Series:
    s = summary[(summary.vector == vector) & (summary.direction == direction) & (summary.edit == "additive")
                & (summary.positions == "boundary") & (summary.metric == metric)]  # fmt: skip
    return s.set_index("alpha")["value"].sort_index()


def checks(summary: pd.DataFrame, vector: str, control_vector: str) -> list[str]:
    w, acc = curve(summary, vector, "steered"), curve(summary, vector, "steered", "accuracy")
    rnd = curve(summary, control_vector, "random")
    mono = bool(np.all(np.diff(w.to_numpy()) > 0))
    ratio = w.iloc[-1] / w.iloc[0] if w.iloc[0] > 0 else float("inf")
    base = w.loc[0.0]
    doubling = [a for a in w.index if a > 0 and w.loc[a] >= 2 * base]
    if doubling:
        a2 = doubling[0]
        change = 100 * (acc.loc[a2] - acc.loc[0.0])
        drop = (f"the smallest α in the grid that at least doubles it is {a2:g} ({w.loc[a2]:.3f} vs {base:.3f}); "
                f"accuracy {100 * acc.loc[0.0]:.1f}% → {100 * acc.loc[a2]:.1f}% ({change:+.1f} points)")  # fmt: skip
    else:
        drop = "no α in the grid doubles it"
    return [
        f"- `{vector}`: wait rate monotonic in α: **{mono}**; ratio between the ends (α={w.index[-1]:g} / "
        f"α={w.index[0]:g}): **{ratio:.1f}×**; {drop}.",
        f"- random control (same norm, hook, positions): wait rate {rnd.min():.3f}–{rnd.max():.3f} over the grid "
        f"(ends ratio {rnd.iloc[-1] / rnd.iloc[0]:.2f}×).",
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    model = load_model(device="cpu")
    prov = model.provenance()
    work = Path(tempfile.mkdtemp(prefix="steer-bench-"))
    store, dom, sae_vec, sae_w, how, sae_final, own = read_vectors(model, args, work)
    evalp = heldout_problems(TaskConfig(), args.n)
    base = dict(max_new_tokens=160, batch_size=32, progress=True)

    parts = []

    def add(df, positions):
        parts.append(df.assign(positions=positions))

    add(run_sweep(model, dom, evalp, SweepConfig(alphas=tuple(args.alphas), **base)), "boundary")
    add(run_sweep(model, sae_vec, evalp, SweepConfig(alphas=tuple(args.alphas), control=False, **base)), "boundary")
    add(run_sweep(model, [dom, sae_vec], evalp, SweepConfig(alphas=(1.0,), edit="projection", **base)), "boundary")
    add(run_sweep(model, own, evalp, SweepConfig(alphas=(1.0,), control=False, **base)), "boundary")
    every = Positions(kind="all", generated_only=True)
    add(run_sweep(model, dom, evalp, SweepConfig(alphas=(1.0,), positions=every, control=False, **base)), "all")

    # confidence search over the SAE columns, on the training traces' boundaries
    train_traces = generate_toy_traces(
        model, heldout_problems(TaskConfig(), args.n_train // 2, seed=TRAIN_SEED + 5_000),
        config=GenerationConfig(temperature=1.0), progress=False,
    )  # fmt: skip
    conf = search(model, sae_w, train_traces, ConfidenceConfig(steps=args.conf_steps, lr=0.01, batch_size=64))
    held = generate_toy_traces(model, heldout_problems(TaskConfig(), args.conf_traces, seed=HELDOUT_SEED + 90_000),
                               config=GenerationConfig(temperature=1.0), progress=False)  # fmt: skip
    ent_before, ent_after = boundary_entropy(model, held), boundary_entropy(model, held, conf.vector)
    add(run_sweep(model, conf.vector, evalp, SweepConfig(alphas=(1.0,), **base)), "boundary")

    sp = speed(model, dom, args)
    rows = pd.concat(parts, ignore_index=True)
    summary = pd.concat([summarise(g).assign(positions=pos) for pos, g in rows.groupby("positions")], ignore_index=True)
    # alpha = 0 of the additive sweep is the unsteered baseline of every edit
    baseline = summary[(summary.alpha == 0) & (summary.vector == "dom") & (summary.direction == "steered")]
    minutes = (time.time() - t_start) / 60

    w0 = baseline.set_index("metric").loc["wait_rate", "value"]
    proj = summary[(summary.edit == "projection") & (summary.metric == "wait_rate")]
    proj_lines = [
        f"| {r.vector} ({r.direction}) | {fmt(r.value, r.lo, r.hi)} | {w0:.3f} | {100 * (r.value / w0 - 1):+.0f}% |"
        for r in proj.itertuples()
    ]
    conf_rows = summary[
        (summary.vector == "confidence") & (summary.metric.isin(["wait_rate", "check_rate", "accuracy"]))
    ]
    conf_lines = [f"| {r.direction} | {r.metric} | {fmt(r.value, r.lo, r.hi)} |" for r in conf_rows.itertuples()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report = f"""# Steering benchmark (`benchmarks/steering.py`)

- date: {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}; wall time {minutes:.1f} min
- machine: {platform.machine()} CPU, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s);
  load average at the end {load:.1f} (shared with a training run and other jobs: timings are noisy)
- model: `{prov["model"]}` ({prov["n_layers"]} layers, d_model {prov["d_model"]}),
  weights sha256 `{prov["weights_sha256"][:12]}`
- command: `python benchmarks/steering.py {" ".join(sys.argv[1:])}`
- vectors read on {args.n_train} training problems (seed {TRAIN_SEED}, disjoint from evaluation), written at
  `{dom.hook}`; evaluation: {args.n} held-out problems per cell, temperature 1, one sample each, seed 0;
  95% intervals: bootstrap over problems (1000 resamples). α is in units of the vector's norm
  (‖dom‖ = {dom.scale:.2f}; the SAE direction is rescaled to the same norm).
- `dom`: mean boundary vector of steps followed by a `wait` line ({dom.provenance["n_positive"]}) minus compute
  steps followed by a compute line ({dom.provenance["n_negative"]}).
- `sae`: TopK SAE (width {args.sae_width}, k {args.sae_k}) on the same boundary vectors, final training metrics
  {", ".join(f"{k} {v:.3g}" for k, v in sae_final.items() if isinstance(v, float))}; direction: {how}.
- `wait_self`: read at the `wait` steps themselves (their boundary vectors minus the same compute group),
  rescaled to the `dom` norm; written like `dom` (its control is `dom`'s random row at the same α).
- positions `boundary`: the newline token that ends each generated step (prompt excluded); `all`: every
  generated token.

## Dose-response (additive, boundary-only) with the random control, projection and every-position rows

{dose_table(summary)}

## Checks

{chr(10).join(checks(summary, "dom", "dom") + checks(summary, "sae", "dom"))}

### Projection ablation (α = 1, boundary tokens): wait per compute step

| direction | ablated | unsteered | change |
|---|---|---|---|
{chr(10).join(proj_lines)}

### Confidence vector (RISE) over the SAE's {sae_w.d_sae} decoder columns

Search: {args.conf_steps} Adam steps (lr 0.01, batch 64) on {len(train_traces)} training traces; training-batch entropy
{conf.history.entropy.iloc[0]:.3f} → {conf.history.entropy.iloc[-1]:.3f}. Mean next-token entropy at the step
boundaries of {len(held)} held-out traces: **{ent_before:.3f} → {ent_after:.3f} nats** (vector added at α = 1).
Effect when generating with it (α = 1, boundary tokens):

| direction | metric | value [95% CI] |
|---|---|---|
{chr(10).join(conf_lines)}

## Speed: steered ÷ unsteered generation, same batches

{args.speed_n} prompts in batches of 32, {args.speed_tokens} sampled tokens per row (forced length), median of
{args.repeats} interleaved repeats: plain {sp["plain_s"]:.2f} s, boundary-steered {sp["steered_s"]:.2f} s →
**{sp["ratio"]:.3f}×** tokens/s (goal ≥ 0.95).
"""
    print(report)
    if args.summary_csv:
        summary.to_csv(args.summary_csv, index=False)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(report)
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
