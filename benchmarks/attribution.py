"""Benchmark: step-to-step attribution (Thought Anchors) against the embedded model's true dependency graph.

    python benchmarks/attribution.py [--n 80] [--resample-traces 16] [--rollouts 8] [--out PATH]

Traces: the model's own samples (temperature 1) on held-out toy problems; the checker's dependency labels
give every pair of completion steps ``q > k`` its truth: **data** (``q`` reads a value ``k`` defined) and
**control** (``k = q - 1``). Answer lines are reported apart (every method is trivially right on them). The
traces are split in two halves by problem: anything chosen (the best single head, the receiver heads) is
chosen on half A and scored on half B; every table is on half B, beside the baselines ``adjacent`` and
``1/(q-k)`` and a random score on the same pairs.

Measured: ROC-AUC of attention suppression (mean KL over q's tokens, and restricted to the positions
where q reads values), the best single head's step attention and the head average; every variant tried
(suppression: mean or max over tokens, rescaled within each query row; attention: mean or sum over k's
tokens, mean or max over q's tokens, all of q's tokens or only where it reads values) with its half-A and
half-B AUC, the aggregation of the best head also chosen on half A; AUC by query kind; receiver score vs
"is read by a later step"; counterfactual resampling importance vs ``on_answer_path``; speed of batched
suppression against the same masked forwards run one at a time. Without ``--out`` nothing is written.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from workbench.attribution import (
    AttentionConfig,
    ResamplingConfig,
    SuppressionConfig,
    attention_frame,
    auc_table,
    dependency_pairs,
    head_kurtosis,
    per_query,
    receiver_scores,
    resampling_importance,
    step_attention,
    step_suppression,
    suppression_frame,
    top_heads,
    vertical_scores,
)
from workbench.attribution.attention import KEY_REDUCTIONS, QUERY_REDUCTIONS, QUERY_TOKENS
from workbench.attribution.evaluate import ROW_NORMS
from workbench.attribution.layout import pad_right, trace_tokens
from workbench.attribution.masks import eager_attention
from workbench.attribution.suppression import TOKEN_REDUCTIONS, masked_logits, suppression_rows, token_kl
from workbench.labels import RolloutConfig, dependency_labels, generate_toy_traces, join_labels
from workbench.labels.agreement import roc_auc
from workbench.models import load_model
from workbench.toy.evaluate import heldout_problems
from workbench.toy.task import TaskConfig
from workbench.traces import GenerationConfig
from workbench.traces.io import atomic_write_bytes

pd.set_option("display.width", 200)
_T0 = time.perf_counter()


def log(msg: str) -> None:
    """Progress of the stages on stderr (the results go to stdout / --out)."""
    print(f"[{time.perf_counter() - _T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def make_traces(model, n: int, seed: int) -> list:
    """Sampled, checker- and dependency-labelled traces with at least two steps."""
    gen = GenerationConfig(max_new_tokens=200, temperature=1.0, batch_size=64, seed=seed)
    traces = generate_toy_traces(model, heldout_problems(TaskConfig(), n), config=gen, progress=False)
    traces = [t for t in traces if len(t.steps) >= 2]
    return join_labels(traces, dependency_labels(traces))


def halves(traces: list) -> tuple[list, list]:
    """Split by problem id (sorted, alternating): half A chooses, half B scores."""
    problems = sorted({t.problem_id for t in traces})
    a = set(problems[::2])
    return [t for t in traces if t.problem_id in a], [t for t in traces if t.problem_id not in a]


def head_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Attention frame → one score column per head (``L{layer}H{head}``) plus ``head_mean``, indexed by pair."""
    wide = frame.pivot_table(index=["trace_id", "q", "k"], columns=["layer", "head"], values="value")
    wide.columns = [f"L{a}H{b}" for a, b in wide.columns]
    wide["head_mean"] = wide.mean(axis=1)
    return wide.reset_index()


def head_aucs(pairs: pd.DataFrame, heads: list[str], target: str, subset: str = "non-answer") -> dict[str, float]:
    """ROC-AUC of every head column for ``target`` (``subset``: 'non-answer' or 'all'; NaN scores left out)."""
    part = pairs[~pairs["is_answer"]] if subset == "non-answer" else pairs
    out = {}
    for h in heads:
        ok = part[part[h].notna()]
        out[h] = roc_auc(ok[h].tolist(), ok[target].tolist())
    return out


def best_head(pairs_a: pd.DataFrame, heads: list[str], target: str) -> tuple[str, float]:
    """The head with the highest ROC-AUC for ``target`` on half A's non-answer pairs."""
    aucs = head_aucs(pairs_a, heads, target)
    name = max(aucs, key=lambda h: -1 if np.isnan(aucs[h]) else aucs[h])
    return name, aucs[name]


def auc1(pairs: pd.DataFrame, method: str, target: str = "data", subset: str = "all") -> float:
    """One ROC-AUC: ``subset`` 'all', 'non-answer', 'answer', 'all but wait', 'non-answer but wait' or a query
    kind; NaN scores left out."""
    if subset.endswith(" but wait"):
        pairs, subset = pairs[pairs["q_kind"] != "wait"], subset.removesuffix(" but wait")
    if subset in ("non-answer", "answer"):
        pairs = pairs[pairs["is_answer"] == (subset == "answer")]
    elif subset != "all":
        pairs = pairs[pairs["q_kind"] == subset]
    ok = pairs[pairs[method].notna()]
    return roc_auc(ok[method].tolist(), ok[target].astype(bool).tolist())


ATTENTION_VARIANTS = list(itertools.product(KEY_REDUCTIONS, QUERY_REDUCTIONS, QUERY_TOKENS))
"""(key_reduce, query_reduce, queries); the first is the library default."""


def variant_tag(key_reduce: str, query_reduce: str, queries: str) -> str:
    return f"k-{key_reduce}/q-{query_reduce}/{queries}"


def spearman(a: dict[str, float], b: dict[str, float]) -> float:
    keys = list(a)
    return float(pd.Series([a[k] for k in keys]).corr(pd.Series([b[k] for k in keys]), method="spearman"))


def timed_suppression(model, traces: list) -> dict:
    """Traces/s of batched suppression vs the same S+1 masked forwards run one row at a time."""
    t0 = time.perf_counter()
    step_suppression(model, traces, SuppressionConfig(progress=False))
    batched = time.perf_counter() - t0
    toks = [trace_tokens(t, model.tokenizer) for t in traces]
    t0 = time.perf_counter()
    with eager_attention(model.hf_model):
        for t in toks:
            ids = pad_right([t.input_ids], model.tokenizer.pad_token_id)
            mask = suppression_rows([t], ids.shape[1], dtype=model.dtype)
            reference = masked_logits(model, ids, mask[:1])[0]
            for r in range(1, t.n_steps + 1):  # the same KL the batched path computes, one row at a time
                token_kl(reference, masked_logits(model, ids, mask[r : r + 1]))
    single = time.perf_counter() - t0
    forwards = sum(t.n_steps + 1 for t in toks)
    return {
        "traces": len(traces),
        "forwards": forwards,
        "batched_s": batched,
        "single_s": single,
        "batched_tps": len(traces) / batched,
        "single_tps": len(traces) / single,
        "ratio": single / batched,
    }


def receiver_result(att_a: pd.DataFrame, att_b: pd.DataFrame, traces_b: list, min_distance: int, k: int) -> dict:
    """Receiver heads chosen on half A; receiver score vs ``read_later`` on half B."""
    kurt = head_kurtosis(vertical_scores(att_a, min_distance=min_distance))
    heads = top_heads(kurt, k)
    scores = receiver_scores(vertical_scores(att_b, min_distance=min_distance), heads)
    truth = {(t.trace_id, s.index): (s.labels["read_later"], s.kind) for t in traces_b for s in t.steps}
    scores["read_later"] = [truth[(a, b)][0] for a, b in zip(scores.trace_id, scores.step, strict=True)]
    scores["kind"] = [truth[(a, b)][1] for a, b in zip(scores.trace_id, scores.step, strict=True)]
    scores["position"] = -scores["step"].astype(float)  # baseline: earlier steps have more later readers
    rng = np.random.default_rng(0)
    scores["random"] = rng.random(len(scores))
    return {
        "heads": heads,
        "kurtosis": kurt.head(k),
        "n_steps": len(scores),
        "n_read": int(scores.read_later.sum()),
        "auc": {
            m: roc_auc(scores[m].tolist(), scores.read_later.tolist()) for m in ("receiver_score", "position", "random")
        },
    }


def resampling_result(model, traces: list, n_rollouts: int, seed: int) -> dict:
    """Counterfactual importance vs ``on_answer_path`` (answer lines left out: they are always on it)."""
    gen = GenerationConfig(max_new_tokens=160, temperature=1.0, batch_size=256, seed=seed)
    cfg = ResamplingConfig(rollouts=RolloutConfig(n_rollouts=n_rollouts, generation=gen), progress=False)
    t0 = time.perf_counter()
    frame = resampling_importance(model, traces, cfg)
    seconds = time.perf_counter() - t0
    truth = {(t.trace_id, s.index): s.labels["on_answer_path"] for t in traces for s in t.steps}
    frame["on_answer_path"] = [truth[(a, b)] for a, b in zip(frame.trace_id, frame.step, strict=True)]
    part = frame[(frame.kind != "answer")].copy()
    part["position"] = part["step"].astype(float)
    part["random"] = np.random.default_rng(0).random(len(part))
    aucs = {}
    for m in ("importance_acc", "importance_kl", "position", "random"):
        ok = part[part[m].notna()]
        aucs[m] = (roc_auc(ok[m].tolist(), ok.on_answer_path.tolist()), len(ok))
    return {
        "frame": frame,
        "aucs": aucs,
        "n_steps": len(part),
        "n_on_path": int(part.on_answer_path.sum()),
        "seconds": seconds,
        "rollouts": int((len(traces) + sum(len(t.steps) for t in traces)) * n_rollouts),
        "mean_different": float(frame.n_different.mean()),
    }


ALL_TRACES_METHODS = ["kl", "kl_read", "kl_max", "kl_read_max", "head_mean", "adjacent", "inverse_distance", "random"]


def fmt(x: float) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


METHOD_NAMES = {
    "kl": "suppression, mean KL over q's tokens",
    "kl_read": "suppression, KL at q's read positions",
    "kl_max": "suppression, max KL over q's tokens",
    "kl_read_max": "suppression, max KL at q's read positions",
    "best_head_data": "best single head (chosen on half A for data)",
    "best_head_read": "best single head, attention from q's read positions (chosen on half A)",
    "best_head_variant": "best single head, aggregation also chosen on half A",
    "best_head_control": "best single head (chosen on half A for control)",
    "best_head_data_stated": "best single head (chosen on half A for data, last stated)",
    "head_mean": "head-averaged step attention",
    "adjacent": "baseline: adjacent step",
    "inverse_distance": "baseline: 1/(q−k)",
    "random": "random score",
}


def variant_rows(pairs_a, pairs_b, sup_variants, variant_heads, per_variant) -> list[str]:
    """Markdown rows: every suppression variant, every aggregation's best head and head mean, baselines."""

    def cells(method: str) -> str:
        vals = [
            auc1(pairs_a, method),
            auc1(pairs_a, method, subset="non-answer"),
            auc1(pairs_b, method),
            auc1(pairs_b, method, subset="non-answer"),
            auc1(pairs_b, method, subset="answer"),
            auc1(pairs_b, method, "control", "non-answer"),
        ]
        return " | ".join(fmt(v) for v in vals)

    rows = [f"| suppression `{m}` | {cells(m)} |" for m in sup_variants]
    for tag in variant_heads:
        head = per_variant[tag][0]
        rows.append(f"| best head `{tag}` ({head.split('|')[1]}) | {cells(head)} |")
    rows += [f"| head mean `{tag}` | {cells(f'{tag}|head_mean')} |" for tag in variant_heads]
    rows += [f"| {METHOD_NAMES[m]} | {cells(m)} |" for m in ("adjacent", "inverse_distance", "random")]
    return rows


KIND_METHODS = [
    "kl",
    "kl_read",
    "kl_max",
    "kl_read_max",
    "best_head_data",
    "best_head_read",
    "best_head_variant",
    "head_mean",
]


def kind_rows(pairs_b: pd.DataFrame, target: str = "data", methods: list[str] | None = None) -> list[str]:
    """Markdown table: ROC-AUC for ``target`` per query kind on half B."""
    kinds = [k for k in ("compute", "wait", "check", "answer") if (pairs_b.q_kind == k).any()]
    n = {k: (int((pairs_b.q_kind == k).sum()), int(pairs_b[pairs_b.q_kind == k][target].sum())) for k in kinds}
    cols = [f"{k} (n={n[k][0]}, {n[k][1]} positive)" for k in kinds] + ["all but wait", "non-answer but wait"]
    lines = ["| method | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for m in [*(methods or KIND_METHODS), "adjacent", "inverse_distance", "random"]:
        subsets = [*kinds, "all but wait", "non-answer but wait"]
        cells = " | ".join(fmt(auc1(pairs_b, m, target, subset=k)) for k in subsets)
        lines.append(f"| {METHOD_NAMES[m]} | {cells} |")
    return lines


STATED_METHODS = ["kl", "kl_read", "kl_max", "kl_read_max", "best_head_data_stated", "head_mean"]


def stated_rows(pairs_b: pd.DataFrame) -> list[str]:
    """Markdown table: ROC-AUC on half B against the second ground truth (last *stated*), beside baselines."""
    lines = ["| method | data (last stated), all | non-answer | answer |", "|---|---|---|---|"]
    for m in [*STATED_METHODS, "adjacent", "inverse_distance", "random"]:
        cells = " | ".join(fmt(auc1(pairs_b, m, "data_stated", sub)) for sub in ("all", "non-answer", "answer"))
        lines.append(f"| {METHOD_NAMES[m]} | {cells} |")
    return lines


def auc_of(table: pd.DataFrame, method: str, target: str, subset: str, length: str = "all") -> str:
    row = table[
        (table.method == method) & (table.target == target) & (table.subset == subset) & (table.length == length)
    ]
    return fmt(row.auc.item()) if len(row) else "—"


def auc_markdown(table: pd.DataFrame, subsets: list[str], methods: list[str]) -> list[str]:
    head = "| method | " + " | ".join(f"data, {s}" for s in subsets) + " | control, non-answer |"
    lines = [head, "|---" * (len(subsets) + 2) + "|"]
    for m in methods:
        cells = [auc_of(table, m, "data", s) for s in subsets] + [auc_of(table, m, "control", "non-answer")]
        lines.append(f"| {METHOD_NAMES[m]} | " + " | ".join(cells) + " |")
    return lines


def length_markdown(table: pd.DataFrame, target: str) -> list[str]:
    part = table[(table.target == target) & (table.subset == "non-answer") & (table.length != "all")]
    lengths = sorted(part.length.unique(), key=lambda s: int(s.split("-")[0].rstrip("+")))
    n = {ln: int(part[part.length == ln].n_pairs.max()) for ln in lengths}
    lines = ["| method | " + " | ".join(f"{ln} steps (n={n[ln]})" for ln in lengths) + " |"]
    lines.append("|---" * (len(lengths) + 1) + "|")
    skip = {"best_head_control" if target == "data" else "best_head_data", "best_head_data_stated"}
    for m in (m for m in METHOD_NAMES if m not in skip):
        lines.append(
            f"| {METHOD_NAMES[m]} | " + " | ".join(auc_of(table, m, target, "non-answer", ln) for ln in lengths) + " |"
        )
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=80, help="held-out problems (one sampled trace each)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed")
    ap.add_argument("--resample-traces", type=int, default=16, help="half-B traces used for resampling importance")
    ap.add_argument("--rollouts", type=int, default=8, help="rollouts per prefix for resampling importance")
    ap.add_argument("--speed-traces", type=int, default=20, help="traces timed batched vs one forward at a time")
    ap.add_argument("--min-distance", type=int, default=2, help="receivers: leave out queries closer than this")
    ap.add_argument("--top-heads", type=int, default=3, help="receivers: number of receiver heads")
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="write the markdown results here (nothing is written without it)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    model = load_model(args.model, device="cpu")
    load_before = os.getloadavg()[0]
    t_start = time.perf_counter()

    log("sampling traces")
    traces = make_traces(model, args.n, args.seed)
    log(f"{len(traces)} traces; suppression")
    half_a, half_b = halves(traces)
    pairs = dependency_pairs(traces)
    key = ["trace_id", "q", "k", "distance"]
    sups = {
        red: suppression_frame(step_suppression(model, traces, SuppressionConfig(token_reduce=red, progress=False)))
        for red in TOKEN_REDUCTIONS
    }
    sup = sups["mean"].merge(sups["max"].rename(columns={"kl": "kl_max", "kl_read": "kl_read_max"}), on=key)
    log("step attention")
    variant_heads: dict[str, list[str]] = {}
    for kr, qr, qs in ATTENTION_VARIANTS:
        cfg = AttentionConfig(key_reduce=kr, query_reduce=qr, queries=qs, progress=False)
        frame = attention_frame(step_attention(model, traces, cfg))
        if (kr, qr, qs) == ATTENTION_VARIANTS[0]:
            att = frame  # the library default: receivers and the plain head columns
        w = head_columns(frame[(frame["distance"] > 0) & (frame["k"] >= 0)])
        tag = variant_tag(kr, qr, qs)
        variant_heads[tag] = [f"{tag}|{c}" for c in w.columns if c.startswith("L")]
        w.columns = [c if c in ("trace_id", "q", "k") else f"{tag}|{c}" for c in w.columns]
        pairs = pairs.merge(w, on=["trace_id", "q", "k"], how="left")
    default_tag = variant_tag(*ATTENTION_VARIANTS[0])
    heads = [h.split("|")[1] for h in variant_heads[default_tag]]
    for c in [*heads, "head_mean"]:
        pairs[c] = pairs[f"{default_tag}|{c}"]
    pairs = pairs.merge(sup, on=key, how="left")
    sup_variants = ["kl", "kl_read", "kl_max", "kl_read_max"]
    for c in list(sup_variants):
        for how in ROW_NORMS:
            pairs[f"{c}/{how}"] = per_query(pairs, c, how)
            sup_variants.append(f"{c}/{how}")
    pairs["random"] = np.random.default_rng(0).random(len(pairs))
    ids_a = {t.trace_id for t in half_a}
    pairs_a, pairs_b = pairs[pairs.trace_id.isin(ids_a)], pairs[~pairs.trace_id.isin(ids_a)].copy()
    chosen = {}
    for target in ("data", "control", "data_stated"):
        name, auc_a = best_head(pairs_a, heads, target)
        chosen[target] = (name, auc_a)
        pairs_b[f"best_head_{target}"] = pairs_b[name]
    # every aggregation's best head on half A; the aggregation whose best head is best on half A
    per_variant = {tag: best_head(pairs_a, hs, "data") for tag, hs in variant_heads.items()}
    pairs_b["best_head_read"] = pairs_b[per_variant[variant_tag("mean", "mean", "read")][0]]
    best_tag = max(per_variant, key=lambda tag: per_variant[tag][1])
    chosen["variant"] = per_variant[best_tag]
    pairs_b["best_head_variant"] = pairs_b[per_variant[best_tag][0]]
    methods = [m for m in METHOD_NAMES if m != "best_head_data_stated"]
    table_b = auc_table(pairs_b, methods)
    table_all = auc_table(pairs, ALL_TRACES_METHODS, length_edges=None)
    selection = {}
    for tag in (default_tag, best_tag):
        hs = variant_heads[tag]
        a_non, a_all = head_aucs(pairs_a, hs, "data"), head_aucs(pairs_a, hs, "data", "all")
        b_all = head_aucs(pairs_b, hs, "data", "all")
        pick = per_variant[tag][0]
        selection[tag] = {
            "pick": pick,
            "pick_all": max(a_all, key=a_all.get),
            "rank_b": 1 + sorted(b_all.values(), reverse=True).index(b_all[pick]),
            "oracle_b": max(b_all, key=b_all.get),
            "oracle_b_auc": max(b_all.values()),
            "spearman": spearman(a_non, head_aucs(pairs_b, hs, "data")),
            "n_heads": len(hs),
        }

    log("receivers")
    rec = receiver_result(
        att[att.trace_id.isin(ids_a)], att[~att.trace_id.isin(ids_a)], half_b, args.min_distance, args.top_heads
    )
    log("resampling")
    res = resampling_result(model, half_b[: args.resample_traces], args.rollouts, args.seed)
    log("speed")
    speed = timed_suppression(model, traces[: args.speed_traces])
    total = time.perf_counter() - t_start
    log("done")

    non_answer = pairs_b[~pairs_b.is_answer]
    kinds = pd.Series([s.kind for t in traces for s in t.steps]).value_counts().to_dict()
    n_err = sum(not s.labels["correct"] for t in traces for s in t.steps if s.kind == "compute")
    acc = np.mean([bool(t.answer_correct) for t in traces])
    prov = model.provenance()
    cmd = "python benchmarks/attribution.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = [
        "# Step-to-step attribution (Thought Anchors) vs the true dependency graph",
        "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
        f"({os.cpu_count()} CPU cores, no GPU; load average {load_before:.1f} at the start — the machine was shared "
        f"with other jobs, so timings are noisy), torch {torch.__version__} on {torch.get_num_threads()} thread(s), "
        "float32.",
        f"Command: `{cmd.strip()}`. Total {total:.0f} s.",
        f"Model: `{prov['path']}` (weights sha256 {prov['weights_sha256'][:12]}…).",
        "",
        f"Traces: {len(traces)} sampled traces (temperature 1, one per held-out problem, 2–5 statements, "
        "at least two steps), "
        f"final-answer accuracy {acc:.1%}; steps by kind {kinds}; {n_err} wrong compute steps. "
        f"Split by problem: half A {len(half_a)} traces (chooses heads), half B {len(half_b)} traces (scored).",
        f"Pairs of completion steps q > k on half B: {len(non_answer)} with a non-answer query "
        f"({int(non_answer.data.sum())} data dependencies, {int(non_answer.control.sum())} control), "
        f"{int(pairs_b.is_answer.sum())} with the answer line as query.",
        "",
        "## ROC-AUC on half B (held-out problems)",
        "",
        *auc_markdown(table_b, ["all", "non-answer", "answer"], methods),
        "",
        f"Best single head for data chosen on half A: {chosen['data'][0]} (half-A AUC {fmt(chosen['data'][1])}); "
        f"for control: {chosen['control'][0]} (half-A AUC {fmt(chosen['control'][1])}). "
        "Heads are `L{layer}H{head}`; step attention (library default) is the mean over q's tokens of the mean "
        "attention to k's tokens. `all` pools answer and non-answer queries. "
        f"Aggregation and head chosen together on half A (highest half-A non-answer AUC over "
        f"{len(ATTENTION_VARIANTS)} aggregations × {len(heads)} heads): `{best_tag}`, "
        f"{chosen['variant'][0].split('|')[1]} (half-A AUC {fmt(chosen['variant'][1])}).",
        "",
        "## Every variant tried, half A (chooses) and half B (scored)",
        "",
        "Data dependencies unless marked. Suppression `kl*`: mean (or `max`) KL over q's tokens (`read`: only the "
        "positions predicting the values q reads); `/sum`, `/max`, `/rank`: rescaled within each query row "
        "(share of the row's total, fraction of its maximum, rank fraction; `workbench.attribution.per_query`). "
        "Log KL is not listed: a monotone transform leaves every AUC unchanged. Attention `k-mean|k-sum`: mean "
        "or sum over k's tokens; `q-mean|q-max`: mean or max over q's query positions; `all|read`: all of q's "
        "tokens or only the positions predicting the values q reads (steps reading nothing are left out).",
        "",
        "| variant | A: data, all | A: data, non-answer | B: data, all | B: data, non-answer | B: data, answer "
        "| B: control, non-answer |",
        "|---|---|---|---|---|---|---|",
        *variant_rows(pairs_a, pairs_b, sup_variants, variant_heads, per_variant),
        "",
        "## By query kind (half B, data dependencies)",
        "",
        "The model's copy of a value is often the step that last *stated* it (a `check` line, the operands "
        "restated in a line that a `wait` corrects), while the ground truth is the step that last *defined* it; "
        "the kinds of query show where methods and truth part ways. The last two columns pool every kind but "
        "`wait` (a diagnostic, not the goal's measure: the head is the one chosen on half A with `wait` queries in).",
        "",
        *kind_rows(pairs_b),
        "",
        "## A second ground truth: the step that last *stated* the value",
        "",
        '`data_stated` (`dependency_labels(..., source="stated")`): q reads a variable from the step that '
        "last *wrote* its value in any form — a compute line's operands and result, a `wait`/`check` value, "
        "the answer — the nearest place its digits can be copied from. Same pairs, same half-B traces; the "
        f"best head is chosen on half A for this target ({chosen['data_stated'][0]}, half-A AUC "
        f"{fmt(chosen['data_stated'][1])}). Stated sources sit closer to q, so the distance baselines are "
        "stronger here.",
        "",
        *stated_rows(pairs_b),
        "",
        *kind_rows(pairs_b, "data_stated", STATED_METHODS),
        "",
        "## Is the head choice sound?",
        "",
        "| aggregation | chosen on half A (non-answer) | chosen on half A (all) | its rank on half B "
        "| best head on half B (not a result: chosen on B) | Spearman of per-head AUCs, A vs B |",
        "|---|---|---|---|---|---|",
        *(
            f"| `{tag}` | {sel['pick'].split('|')[1]} | {sel['pick_all'].split('|')[1]} | "
            f"{sel['rank_b']} of {sel['n_heads']} | {sel['oracle_b'].split('|')[1]} ({fmt(sel['oracle_b_auc'])}) | "
            f"{fmt(sel['spearman'])} |"
            for tag, sel in selection.items()
        ),
        "",
        "Suppression needs no choice, so it is also scored on all traces (both halves):",
        "",
        *auc_markdown(table_all, ["all", "non-answer", "answer"], ALL_TRACES_METHODS),
    ]
    out += [
        "",
        "### By trace length (half B, non-answer queries), data dependencies",
        "",
        *length_markdown(table_b, "data"),
        "",
        "### By trace length (half B, non-answer queries), control dependency (k = q − 1)",
        "",
        *length_markdown(table_b, "control"),
        "",
        "## Receiver heads",
        "",
        f"Top {args.top_heads} heads by mean kurtosis of vertical scores on half A (min distance {args.min_distance}): "
        + ", ".join(f"L{a}H{b}" for a, b in rec["heads"])
        + f'. Receiver score (mean vertical score over them) vs "is read by a later step" on half B: {rec["n_steps"]} '
        f"steps with a step ≥ {args.min_distance} later, {rec['n_read']} of them read later.",
        "",
        "| score | ROC-AUC |",
        "|---|---|",
        f"| receiver score | {fmt(rec['auc']['receiver_score'])} |",
        f"| baseline: earlier step (−index) | {fmt(rec['auc']['position'])} |",
        f"| random | {fmt(rec['auc']['random'])} |",
        "",
        "## Counterfactual importance by resampling",
        "",
        f"{args.resample_traces} half-B traces, {args.rollouts} rollouts per prefix (S+1 prefixes per trace: "
        f"{res['rollouts']} rollouts in all, {res['seconds']:.0f} s), toy similarity (a resample counts when it "
        f"states a different statement or value; on average {res['mean_different']:.1f} of {args.rollouts} did). "
        f"Scored against `on_answer_path` on {res['n_steps']} non-answer steps ({res['n_on_path']} on the path):",
        "",
        "| score | ROC-AUC | steps scored |",
        "|---|---|---|",
    ]
    for m, label in [
        ("importance_acc", "importance: accuracy(keep) − accuracy(different)"),
        ("importance_kl", "importance: KL(answers keep ‖ different)"),
        ("position", "baseline: later step (index)"),
        ("random", "random"),
    ]:
        auc, n = res["aucs"][m]
        out.append(f"| {label} | {fmt(auc)} | {n} |")
    out += [
        "",
        "## Speed of suppression",
        "",
        f"{speed['traces']} traces, {speed['forwards']} masked forwards (S + 1 per trace), eager attention, CPU:",
        "",
        "| run | seconds | traces/s |",
        "|---|---|---|",
        f"| batched (copies and traces share a forward) | {speed['batched_s']:.2f} | {speed['batched_tps']:.1f} |",
        f"| one masked forward at a time | {speed['single_s']:.2f} | {speed['single_tps']:.1f} |",
        f"| ratio | {speed['ratio']:.1f}× | |",
        "",
    ]
    text = "\n".join(out)
    print(text)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
