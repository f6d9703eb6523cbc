"""Benchmark: does the embedded model know a step is wrong? Probes, heads and logit baselines, side by side.

    python benchmarks/probes.py [--n 800] [--n-ood 200] [--vote-problems 100] [--out benchmarks/results/probes.md]

Data: the model's own samples at temperature 1 on held-out problems (2–5 statements, in distribution) and
on longer programs (6–7 statements, out of distribution: the model's organic errors, never trained on),
labelled by the checker. Every step is captured once: residual stream after every layer with three
poolings (boundary token, last content token, mean), per-token hidden states of every layer, top-3 token
probabilities and per-step logit statistics. Splits are by problem (60/20/20, ``StepStore.split``): probes
and heads train on *train*, choose their regularisation / early-stopping epoch / ProcessBench threshold
on *val*, and are reported on *test*.

Targets, on compute steps: ``fresh error`` (the checker's ``logical`` is False: the value does not follow
from what the trace stated before) and ``incorrect`` (``correct`` is False: propagated errors included).

Reports: the per-layer × pooling sweep (torch, batched) and its agreement with scikit-learn's
LogisticRegression plus the speed ratio; better read-outs (several layers and poolings concatenated, with
logit statistics, an MLP probe, token-level multiple-instance probes — each token scored from its hidden
states, alone or paired with the previous token's last-layer state, the step's score their max — and the
uncertainty head with mean / max / attention pooling); the side-by-side ROC-AUC / PR-AUC table in and out of
distribution; ProcessBench F1 with trivial baselines; best-of-8 and weighted majority voting; the overhead
of live step scoring on generation. Without ``--out`` nothing is written.
"""

# ruff: noqa: E501  (markdown table rows)
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import live_scoring  # benchmarks/live_scoring.py: the same overhead measurement
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from workbench.capture import STEP_STATS, CaptureConfig, TokenFeatureConfig, capture
from workbench.heads import HeadConfig, HeadTrainConfig, score_steps, train_head
from workbench.labels import generate_toy_traces
from workbench.models import load_model
from workbench.probes.data import make_target
from workbench.probes.linear import ProbeConfig, fit_linear, layer_sweep, readout_stack
from workbench.probes.logits import BASELINES, logit_baselines
from workbench.probes.metrics import binary_report, processbench_table, roc_auc
from workbench.probes.mlp import MLPProbeConfig, fit_mlp
from workbench.probes.tokens import TokenProbeConfig, fit_token_probe, token_bags
from workbench.probes.voting import scored_steps, trace_table, voting_table
from workbench.store import open_store
from workbench.toy import TaskConfig
from workbench.toy.checker import check_trace
from workbench.toy.evaluate import behaviour_stats, heldout_problems
from workbench.traces import GenerationConfig
from workbench.traces.io import atomic_write_bytes

POOLINGS = ("boundary", "last", "mean")
TARGETS = {"fresh error": "fresh_error", "incorrect": "incorrect"}
L2_GRID = (1.0, 10.0, 100.0, 1000.0)


def f3(x) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


# ---- data --------------------------------------------------------------------------------------------


def sample_store(model, problems, work: Path, name: str, seed: int, max_new: int):
    """Sample, label and capture one trace set; returns (traces, store) with derived label columns."""
    gen = GenerationConfig(temperature=1.0, max_new_tokens=max_new, batch_size=64, seed=seed)
    traces = generate_toy_traces(model, problems, config=gen, progress=False)
    hooks = tuple(f"blocks.{i}.hook_resid_post" for i in range(model.n_layers))
    tf = TokenFeatureConfig(hooks=hooks, top_k=3)
    cfg = CaptureConfig(hooks=hooks, poolings=POOLINGS, logit_stats=True, token_features=tf, progress=False)
    capture(traces, model, work / name, cfg)
    store = open_store(work / name)
    idx = store.index
    compute = idx["label_kind"] == "compute"
    labels = idx[["trace_id", "step_index"]].copy()
    labels["fresh_error"] = np.where(compute, (~idx["label_logical"].astype(bool)).astype(float), np.nan)
    labels["incorrect"] = np.where(compute, (~idx["label_correct"].astype(bool)).astype(float), np.nan)
    if "fresh_error" not in idx.columns:
        store.add_labels(labels, name="bench")
    return traces, store


def logit_matrix(store, rows: pd.DataFrame) -> torch.Tensor:
    """Per-step logit statistics (+ smallest token probability) as features; NaN → 0."""
    b = logit_baselines(store, rows)
    x = np.column_stack([rows[c].to_numpy(dtype=np.float64) for c in STEP_STATS] + [b["one_minus_min_prob"]])
    return torch.as_tensor(np.nan_to_num(x), dtype=torch.float32)


def wait_prob(store, rows: pd.DataFrame, wait_id: int) -> np.ndarray:
    """The model's own probability of writing ``w`` (``wait``) right after each step: read from the top-3
    distribution stored for the next step's first token (0 when ``w`` is not among the top 3 or no step follows).
    """
    idx = store.index[store.index.n_token_rows > 0].set_index(["trace_id", "step_index"])
    keys = list(zip(rows.trace_id, rows.step_index + 1, strict=True))
    have = np.array([k in idx.index for k in keys], dtype=bool)
    out = np.zeros(len(rows))
    if have.any():
        nxt = idx.loc[[k for k, h in zip(keys, have, strict=True) if h]].reset_index()
        ids, probs = store.step_tokens("topk_ids", nxt), store.step_tokens("topk_probs", nxt)
        out[have] = [float(p[0][i[0] == wait_id].sum()) for i, p in zip(ids, probs, strict=True)]
    return out


def features(store, rows: pd.DataFrame, readouts, with_logits: bool) -> torch.Tensor:
    x = readout_stack(store, rows, readouts)  # [readout, n, d]
    x = x.permute(1, 0, 2).reshape(len(rows), -1)
    return torch.cat([x, logit_matrix(store, rows)], 1) if with_logits else x


# ---- probes ------------------------------------------------------------------------------------------


def sweep_with_l2(store, target, splits, cfg_kw) -> tuple[pd.DataFrame, dict]:
    """Layer × pooling sweep for each l2; per read-out the l2 with the best val ROC-AUC; its test metrics."""
    tables, seconds = [], {}
    for l2 in L2_GRID:
        t0 = time.perf_counter()
        res = layer_sweep(store, target, poolings=POOLINGS, splits=splits, positive=1.0, task="binary",
                          config=ProbeConfig(l2=l2, **cfg_kw))  # fmt: skip
        seconds[l2] = time.perf_counter() - t0
        tables.append(res.table.assign(l2=l2))
    t = pd.concat(tables)
    val = t[t.split == "val"].sort_values("roc_auc", ascending=False).drop_duplicates(["hook", "pooling"])
    best = val[["hook", "pooling", "l2"]].merge(t[t.split == "test"], on=["hook", "pooling", "l2"])
    return best.sort_values(["pooling", "layer"]).reset_index(drop=True), seconds


def sklearn_agreement(store, splits, readouts, l2: float) -> pd.DataFrame:
    """Torch batched sweep vs scikit-learn LogisticRegression per read-out: test AUC of each and fit times."""
    tr = splits["train"][splits["train"].fresh_error.notna()]
    te = splits["test"][splits["test"].fresh_error.notna()]
    ytr, yte = tr.fresh_error.to_numpy(), te.fresh_error.to_numpy()
    xtr, xte = readout_stack(store, tr, readouts), readout_stack(store, te, readouts)
    t0 = time.perf_counter()
    probe = fit_linear(xtr, ytr, ProbeConfig(l2=l2, device="cpu"))
    t_torch = time.perf_counter() - t0
    z = probe.scores(xte)
    rows, t_sk = [], 0.0
    for j, (h, p) in enumerate(readouts):
        m, s = xtr[j].mean(0), xtr[j].std(0, unbiased=False).clamp_min(1e-6)
        t0 = time.perf_counter()
        ref = LogisticRegression(C=1.0 / l2, max_iter=2000).fit(((xtr[j] - m) / s).numpy(), ytr)
        t_sk += time.perf_counter() - t0
        sk = roc_auc(yte, ref.decision_function(((xte[j] - m) / s).numpy()))
        rows.append({"hook": h, "pooling": p, "torch_auc": roc_auc(yte, z[j].numpy()), "sklearn_auc": sk})
    df = pd.DataFrame(rows)
    df.attrs.update(torch_s=t_torch, sklearn_s=t_sk)
    return df


def fit_select(xtr, ytr, xva, yva) -> tuple:
    """Logistic probe on one matrix with l2 chosen on val ROC-AUC."""
    best = None
    for l2 in L2_GRID:
        probe = fit_linear(xtr, ytr, ProbeConfig(l2=l2, device="cpu"))
        auc = roc_auc(yva, probe.scores(xva).numpy())
        if best is None or auc > best[1]:
            best = (probe, auc, l2)
    return best


def binary(t):
    return make_target(t, "fresh_error", task="binary", positive=1.0)


def token_probe_variants(hooks) -> dict[str, TokenProbeConfig]:
    """Token-level MIL probes on hidden states only (no logits): own-token states, and the pair "previous
    token's last-layer state (the model's prediction) × this token's first-layer state (what was written)"."""
    first, last = hooks[0], hooks[-1]
    kw = {"device": "cpu", "epochs": 60, "patience": 10}
    return {
        "token MIL probe, own states all layers, linear, max": TokenProbeConfig(hooks=tuple(hooks), hidden=0, **kw),
        "token MIL probe, own states all layers, MLP, max": TokenProbeConfig(hooks=tuple(hooks), hidden=64, **kw),
        "token MIL probe, own states all layers, MLP, logsumexp": TokenProbeConfig(
            hooks=tuple(hooks), hidden=64, aggregate="logsumexp", **kw
        ),
        "token MIL probe, own + previous token's states all layers, MLP, max": TokenProbeConfig(
            hooks=tuple(hooks), previous_hooks=tuple(hooks), hidden=64, **kw
        ),
        "token MIL probe, layer 0 × previous token's layer 3, MLP, max": TokenProbeConfig(
            hooks=(first,), previous_hooks=(last,), hidden=64, **kw
        ),
        "token MIL probe, layer 0 × previous token's layer 3, MLP + bilinear (rank 32), max": TokenProbeConfig(
            hooks=(first,), previous_hooks=(last,), hidden=64, bilinear_rank=32, **kw
        ),
    }


def token_scores(probe, store, all_rows: pd.DataFrame, rows: pd.DataFrame, cfg) -> np.ndarray:
    """Step logits of a token probe for ``rows``, computed on all steps of their traces (previous tokens)."""
    bags = token_bags(store, all_rows[all_rows.trace_id.isin(set(rows.trace_id))], cfg)
    z = bags.steps[["trace_id", "step_index"]].assign(z=probe.scores(bags))
    return rows[["trace_id", "step_index"]].merge(z, on=["trace_id", "step_index"], how="left").z.to_numpy()


# ---- the benchmark -----------------------------------------------------------------------------------


def run(args) -> str:
    torch.set_num_threads(args.threads)
    t_start = time.time()
    model = load_model(args.model, device="cpu")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="probes-bench-"))
    ind_problems = heldout_problems(TaskConfig(), args.n)
    ood_task = TaskConfig(min_statements=args.ood_min, max_statements=args.ood_max)
    ood_problems = heldout_problems(ood_task, args.n_ood, seed=41_000)
    traces, store = sample_store(model, ind_problems, work, "ind", seed=1, max_new=200)
    ood_traces, ood = sample_store(model, ood_problems, work, "ood", seed=2, max_new=24 * (2 * args.ood_max + 2))
    out = [
        f"- traces: {len(traces)} in distribution, {len(ood_traces)} out of distribution ({args.ood_min}-{args.ood_max} statements)"
    ]
    for name, ts in (("in distribution", traces), ("out of distribution", ood_traces)):
        probs = ind_problems if ts is traces else ood_problems
        st = behaviour_stats([check_trace(p, t.completion) for p, t in zip(probs, ts, strict=True)])
        out.append(f"- {name}: accuracy {st.accuracy:.3f}, fresh wrong-step rate {st.fresh_error_rate:.3f}, "
                   f"corrected by `wait` {st.corrected_share:.3f}, garbled lines {st.garbled_rate:.3f}")  # fmt: skip
    idx = store.index[store.index.row >= 0]
    splits = store.split(fractions={"train": 0.6, "val": 0.2, "test": 0.2}, index=idx)
    for k, v in splits.items():
        c = v[v.fresh_error.notna()]
        out.append(
            f"- {k}: {v.problem_id.nunique()} problems, {len(c)} compute steps, {int(c.fresh_error.sum())} fresh errors, {int(c.incorrect.sum())} incorrect"
        )
    report = {"header": out}

    # 1. layer × pooling sweeps
    sweeps = {}
    for label, col in TARGETS.items():
        best, secs = sweep_with_l2(store, col, splits, {"device": "cpu"})
        sweeps[label] = best
    hooks = store.hooks
    readouts = tuple((h, p) for p in POOLINGS for h in hooks)
    agree = sklearn_agreement(store, splits, readouts, l2=10.0)

    # 2. better read-outs for fresh errors
    sel = {k: v[v.fresh_error.notna()] for k, v in splits.items()}
    ytr, yva, yte = (binary(sel[k]).values for k in ("train", "val", "test"))
    ood_rows = ood.index[(ood.index.row >= 0) & ood.index.fresh_error.notna()]
    y_ood = binary(ood_rows).values
    variants = {
        "linear, all layers, boundary": ([(h, "boundary") for h in hooks], False),
        "linear, all layers × 3 poolings": (list(readouts), False),
        "linear, all layers × 3 poolings + logit stats": (list(readouts), True),
    }
    step_scores = {"test": {}, "val": {}, "ood": {}}
    readout_rows = []
    for name, (ro, wl) in variants.items():
        xtr, xva, xte = (features(store, sel[k], ro, wl) for k in ("train", "val", "test"))
        probe, val_auc, l2 = fit_select(xtr, ytr, xva, yva)
        zte = probe.scores(xte).numpy()
        rep = binary_report(yte, zte, torch.sigmoid(torch.tensor(zte)).numpy())
        readout_rows.append({"read-out": name, "l2 (val)": l2, "val ROC-AUC": val_auc, **rep.as_dict()})
        step_scores["test"][name] = zte
        step_scores["val"][name] = probe.scores(xva).numpy()
        step_scores["ood"][name] = probe.scores(features(ood, ood_rows, ro, wl)).numpy()
    tgt = {k: binary(sel[k]) for k in ("train", "val")}
    mlp_cfg = MLPProbeConfig(hidden=256, epochs=200, patience=15, device="cpu")
    for mname, vname in (
        ("MLP probe (hidden states)", "linear, all layers × 3 poolings"),
        ("MLP probe (hidden + logit stats)", "linear, all layers × 3 poolings + logit stats"),
    ):
        ro, wl = variants[vname]
        xtr, xva, xte = (features(store, sel[k], ro, wl) for k in ("train", "val", "test"))
        mlp = fit_mlp(xtr, tgt["train"], xva, tgt["val"], mlp_cfg)
        zte = mlp.scores(xte).numpy()
        rep = binary_report(yte, zte, torch.sigmoid(torch.tensor(zte)).numpy())
        readout_rows.append(
            {
                "read-out": f"{mname}, all layers × 3 poolings",
                "l2 (val)": np.nan,
                "val ROC-AUC": roc_auc(yva, mlp.scores(xva).numpy()),
                **rep.as_dict(),
            }
        )
        step_scores["test"][mname], step_scores["val"][mname] = zte, mlp.scores(xva).numpy()
        step_scores["ood"][mname] = mlp.scores(features(ood, ood_rows, ro, wl)).numpy()

    token_probes = {}
    ood_all = ood.index[ood.index.row >= 0]
    for name, tcfg in token_probe_variants(hooks).items():
        bags = {k: token_bags(store, splits[k], tcfg, "fresh_error", 1.0) for k in ("train", "val")}
        tp = fit_token_probe(bags["train"], bags["val"], tcfg)
        token_probes[name] = tp
        for part, rows_, st, all_ in (
            ("test", sel["test"], store, splits["test"]),
            ("val", sel["val"], store, splits["val"]),
            ("ood", ood_rows, ood, ood_all),
        ):
            step_scores[part][name] = token_scores(tp, st, all_, rows_, tcfg)
        zte = np.array(step_scores["test"][name])
        rep = binary_report(yte, zte, torch.sigmoid(torch.tensor(zte)).numpy())
        readout_rows.append(
            {
                "read-out": name,
                "l2 (val)": np.nan,
                "val ROC-AUC": roc_auc(yva, step_scores["val"][name]),
                **rep.as_dict(),
            }
        )

    head_cfgs = {
        "uncertainty head (hidden states)": HeadConfig(hooks=tuple(hooks), width=128, n_heads=4),
        "uncertainty head (hidden states), max pooling": HeadConfig(
            hooks=tuple(hooks), width=128, n_heads=4, pool="max"
        ),
        "uncertainty head (hidden states), attention pooling": HeadConfig(
            hooks=tuple(hooks), width=128, n_heads=4, pool="attention"
        ),
        "uncertainty head (hidden + logit features)": HeadConfig(
            hooks=tuple(hooks), logit_features=True, top_k=3, width=128, n_heads=4
        ),
    }
    heads = {}
    for name, hc in head_cfgs.items():
        tc = HeadTrainConfig(
            target="fresh_error", positive=1.0, epochs=args.head_epochs, patience=6, device="cpu", progress=False
        )
        res = train_head(store, work / name.replace(" ", "_"), hc, tc, splits=splits)
        heads[name] = res
        for part, rows_, st in (("test", sel["test"], store), ("val", sel["val"], store), ("ood", ood_rows, ood)):
            sc = score_steps(res.head, st, rows_)
            sc = rows_[["trace_id", "step_index"]].merge(sc, on=["trace_id", "step_index"], how="left")
            step_scores[part][name] = sc.head_score.to_numpy()
        zte = step_scores["test"][name]
        rep = binary_report(yte, zte, torch.sigmoid(torch.tensor(zte)).numpy())
        readout_rows.append(
            {
                "read-out": name,
                "l2 (val)": np.nan,
                "val ROC-AUC": roc_auc(yva, step_scores["val"][name]),
                **rep.as_dict(),
            }
        )
    wait_id = model.tokenizer.convert_tokens_to_ids("w")
    for part, rows_, st in (("test", sel["test"], store), ("val", sel["val"], store), ("ood", ood_rows, ood)):
        b = logit_baselines(st, rows_)
        for c in BASELINES:
            step_scores[part][f"logit: {c}"] = b[c].to_numpy()
        step_scores[part]["model's own P(wait) after the step"] = wait_prob(st, rows_, wait_id)
    report["readouts"] = pd.DataFrame(readout_rows)

    # 3. side by side, in distribution and out of distribution
    side = []
    for part, y in (("in distribution (test)", yte), ("out of distribution", y_ood)):
        key = "test" if part.startswith("in") else "ood"
        for name, z in step_scores[key].items():
            ok = np.isfinite(z)
            r = binary_report(y[ok], z[ok])
            side.append(
                {
                    "set": part,
                    "scorer": name,
                    "ROC-AUC": r.roc_auc,
                    "PR-AUC": r.pr_auc,
                    "PR-AUC (correct +)": r.pr_auc_reverse,
                    "steps": r.n,
                    "wrong": r.n_pos,
                }
            )
    report["side"] = pd.DataFrame(side)
    report["timing"] = {"agree": agree}

    # 4. ProcessBench F1 (all steps of val/test traces; first incorrect step)
    best_head_name = max(heads, key=lambda n: heads[n].history.val_pr_auc.max())
    best_head = heads[best_head_name].head
    ro_all, _ = variants["linear, all layers × 3 poolings + logit stats"]
    pb_probe, _, _ = fit_select(
        *(features(store, sel[k], ro_all, True) for k in ("train",)),
        ytr,
        features(store, sel["val"], ro_all, True),
        yva,
    )
    pb = {}
    for part in ("val", "test"):
        rows_ = splits[part]
        df = rows_[["trace_id", "problem_id", "step_index", "label_first_error"]].reset_index(drop=True)
        df["probe"] = pb_probe.scores(features(store, rows_, ro_all, True)).numpy()
        df = df.merge(
            score_steps(best_head, store, rows_)[["trace_id", "step_index", "head_score"]],
            on=["trace_id", "step_index"],
            how="left",
        )
        df["min token prob"] = logit_baselines(store, rows_)["one_minus_min_prob"].to_numpy()
        pb[part] = df.dropna()
    report["processbench"] = processbench_table(pb["val"], pb["test"], ["head_score", "probe", "min token prob"])
    report["pb_head"] = best_head_name

    # 5. voting over N samples, in distribution and on longer programs (where one sample is rarely right)
    hooks_t = tuple(hooks)
    vcfg = CaptureConfig(
        hooks=hooks_t,
        poolings=POOLINGS,
        logit_stats=True,
        token_features=TokenFeatureConfig(hooks=hooks_t, top_k=3),
        progress=False,
    )
    report["voting"] = {}
    vote_sets = [
        ("in distribution", TaskConfig(), 51_000, 200),
        (
            f"out of distribution ({args.ood_min}-{args.ood_max} statements)",
            ood_task,
            52_000,
            24 * (2 * args.ood_max + 2),
        ),
    ]
    for name, task, seed, max_new in vote_sets:
        vote_problems = heldout_problems(task, args.vote_problems, seed=seed)
        gen = GenerationConfig(temperature=1.0, max_new_tokens=max_new, batch_size=64, seed=3, num_samples=args.vote_n)
        vtraces = generate_toy_traces(model, vote_problems, config=gen, progress=False)
        folder = work / f"vote-{seed}"
        capture(vtraces, model, folder, vcfg)
        vstore = open_store(folder)
        vrows = vstore.index[vstore.index.row >= 0]
        vsteps = scored_steps(
            vrows[["trace_id", "problem_id", "step_index"]],
            {
                "head": score_steps(best_head, vstore, vrows)[["trace_id", "step_index", "head_prob"]],
                "probe": vrows[["trace_id", "step_index"]].assign(
                    p=torch.sigmoid(pb_probe.scores(features(vstore, vrows, ro_all, True))).numpy()
                ),
                "min token prob": logit_baselines(vstore, vrows)[["trace_id", "step_index", "one_minus_min_prob"]],
            },
        )
        report["voting"][name] = voting_table(trace_table(vtraces), vsteps, ["head", "probe", "min token prob"])

    # 6. live scoring overhead (the hidden-state head; logit features are not available live)
    live_head = heads["uncertainty head (hidden states)"].head
    prompts = [p.prompt for p in heldout_problems(TaskConfig(), args.live_batch, seed=61_000)]
    report["live"] = live_scoring.measure(
        model, live_head, prompts, GenerationConfig(temperature=1.0, max_new_tokens=120, seed=4), args.live_repeats
    )
    report["seconds"] = time.time() - t_start
    report["model"] = model
    return render(report, args, sweeps, agree)


def render(r, args, sweeps, agree) -> str:
    model = r["model"]
    cpu = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    cmd = "python benchmarks/probes.py " + " ".join(sys.argv[1:])
    lines = [
        "# Probes, uncertainty heads and logit baselines for step correctness (embedded model)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu} (shared with other jobs: wall times are noisy, ratios are same-run); {r['seconds']:.0f} s in all",
        f"- model: `{model.resolved.path.name}`, weights sha256 `{model.weights_sha256[:12]}`",
        f"- command: `{cmd.strip()}`",
        *r["header"],
        "",
        "## Layer × pooling sweep (logistic probe per read-out, l2 chosen on val, test ROC-AUC / PR-AUC)",
        "",
    ]
    for label, t in sweeps.items():
        piv = t.pivot_table(index="layer", columns="pooling", values="roc_auc")
        pr = t.pivot_table(index="layer", columns="pooling", values="pr_auc")
        lines += [
            f"**{label}** (test base rate {t.base_rate.iloc[0]:.3f})",
            "",
            "| layer | " + " | ".join(f"{p} ROC / PR" for p in piv.columns) + " |",
            "|---:|" + "---:|" * len(piv.columns),
        ]
        for layer in piv.index:
            lines.append(
                f"| {layer} | "
                + " | ".join(f"{f3(piv.loc[layer, p])} / {f3(pr.loc[layer, p])}" for p in piv.columns)
                + " |"
            )
        lines.append("")
    diff = (agree.torch_auc - agree.sklearn_auc).abs()
    lines += [
        "## Torch batched sweep vs scikit-learn (fresh error, l2 = 10, same standardised data, test ROC-AUC)",
        "",
        f"- largest |AUC difference| over {len(agree)} read-outs: **{diff.max():.4f}** (goal ≤ 0.01)",
        f"- fit time: torch, all read-outs as one batched problem {agree.attrs['torch_s']:.2f} s; scikit-learn LogisticRegression one by one {agree.attrs['sklearn_s']:.2f} s → **{agree.attrs['sklearn_s'] / agree.attrs['torch_s']:.1f}×** (CPU)",
        "",
        "## Better read-outs for fresh errors (test split)",
        "",
        "| read-out | l2 (val) | val ROC-AUC | test ROC-AUC | PR-AUC | PR-AUC (correct +) | Brier | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["readouts"].itertuples(index=False):
        d = x._asdict()
        lines.append(
            f"| {d['_0']} | {f3(d['_1']) if not np.isnan(d['_1']) else '—'} | {f3(d['_2'])} | **{f3(d['roc_auc'])}** | {f3(d['pr_auc'])} | {f3(d['pr_auc_reverse'])} | {f3(d['brier'])} | {f3(d['ece'])} |"
        )
    hidden = r["readouts"][~r["readouts"]["read-out"].str.contains("logit")]
    win = hidden.loc[hidden["val ROC-AUC"].idxmax()]
    lines += [
        "",
        f"Best read-out of hidden states only (no logit features), chosen on val: **{win['read-out']}** — val "
        f"ROC-AUC {win['val ROC-AUC']:.3f}, test ROC-AUC {win['roc_auc']:.3f} (goal ≥ 0.95). Token MIL probes score "
        "every token of a step and take the max; the previous token's last-layer state carries the model's "
        "prediction of this token, its layer-0 state what was written.",
    ]
    lines += [
        "",
        "## Side by side: fresh-error detection in and out of distribution",
        "",
        "Nothing was trained on the out-of-distribution traces.",
        "",
        "| set | scorer | ROC-AUC | PR-AUC | PR-AUC (correct +) | steps | wrong |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for x in r["side"].itertuples(index=False):
        lines.append(f"| {x[0]} | {x[1]} | {f3(x[2])} | {f3(x[3])} | {f3(x[4])} | {x[5]} | {x[6]} |")
    lines += [
        "",
        f"## ProcessBench-style F1 (first incorrect step; threshold chosen on val traces, F1 on test traces; head: {r['pb_head']})",
        "",
        "| scorer | threshold | traces with error | error-free traces | acc. on erroneous | acc. on error-free | F1 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r["processbench"].itertuples(index=False):
        lines.append(
            f"| {x.scorer} | {f3(x.threshold)} | {x.n_error} | {x.n_correct} | {f3(x.acc_error)} | {f3(x.acc_correct)} | **{f3(x.f1)}** |"
        )
    sets = list(r["voting"])
    lines += [
        "",
        f"## Voting over N = {args.vote_n} samples ({args.vote_problems} held-out problems per set, temperature 1)",
        "",
        "Final-answer accuracy. The scorers were trained in distribution only.",
        "",
        "| method | scorer | " + " | ".join(sets) + " |",
        "|---|---|" + "---:|" * len(sets),
    ]
    tables = [r["voting"][k] for k in sets]
    for rows in zip(*(t.itertuples(index=False) for t in tables), strict=True):
        x = rows[0]
        lines.append(f"| {x.method} | {x.scorer} | " + " | ".join(f3(y.accuracy) for y in rows) + " |")
    lv = r["live"]
    lines += [
        "",
        "## Live step scoring overhead",
        "",
        f"The trained hidden-state head (all layers, width 128). Batch of {args.live_batch} prompts, 120 new tokens, temperature 1, torch on {torch.get_num_threads()} thread(s). Plain generate, plain generate again (control), live scoring with the head in a scoring process and with the head in this process, each on its own copy of the model, take turns one sampled token at a time (the method of `benchmarks/live_scoring.py`: it puts every call under the same drift of this VM's speed), {args.live_repeats} timed rounds; ratios are geometric means over rounds with 95% confidence intervals. Plain generate {lv['plain_s']:.2f} s; control {lv['control_ratio']:.3f} ({lv['control_lo']:.3f}–{lv['control_hi']:.3f}); head in a scoring process (the default when torch leaves a CPU free) {lv['offload_s']:.2f} s → overhead ratio **{lv['offload_ratio']:.3f}** ({lv['offload_lo']:.3f}–{lv['offload_hi']:.3f}; goal ≤ 1.05), scores collected {lv['late_tokens']:.2f} tokens after they are ready on average; head in the generating process {lv['local_s']:.2f} s → **{lv['local_ratio']:.3f}** ({lv['local_lo']:.3f}–{lv['local_hi']:.3f}). By head size, batch and torch threads: `benchmarks/results/live_scoring.md`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=800, help="held-out in-distribution problems (one sample each)")
    p.add_argument("--n-ood", type=int, default=200, help="out-of-distribution problems")
    p.add_argument("--ood-min", type=int, default=6, help="fewest statements of OOD programs")
    p.add_argument("--ood-max", type=int, default=7, help="most statements of OOD programs")
    p.add_argument("--vote-problems", type=int, default=100, help="problems for the voting experiment")
    p.add_argument("--vote-n", type=int, default=8, help="samples per problem for voting")
    p.add_argument("--head-epochs", type=int, default=40, help="most epochs of head training")
    p.add_argument("--live-batch", type=int, default=32, help="prompts in the live-scoring overhead batch")
    p.add_argument(
        "--live-repeats", type=int, default=21, help="timed rounds for live scoring (geometric mean ratio, 95%% CI)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--work", default=None, help="directory for the stores (default: a temporary one)")
    p.add_argument("--out", default=None, help="write the markdown here (e.g. benchmarks/results/probes.md)")
    args = p.parse_args(argv)
    text = run(args)
    print(text)
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    return text


if __name__ == "__main__":
    main()
