"""``workbench attribute``: step-to-step attribution of a traces file from the shell, written as a tidy table.

``--method attention`` writes the long step-attention frame (``trace_id, layer, head, q, k, distance,
value``), ``receivers`` the receiver scores of the top heads, ``suppression`` the suppression frame
(``trace_id, q, k, distance, kl, kl_read``) and ``resampling`` the counterfactual importance per step. Toy
traces get their dependency labels first (the read-restricted KL needs them). The table is written
atomically (temp file + rename) as Parquet or CSV, chosen by the extension of ``--out``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from workbench.atomic import atomic_write_table

__all__ = ["METHODS", "configure", "run"]

METHODS = ("attention", "receivers", "suppression", "resampling")


def configure(p: argparse.ArgumentParser, field_docs: Callable[[type], dict[str, str]]) -> None:
    """Add the flags (help taken from the config dataclasses' field docstrings)."""
    from workbench.attribution.attention import AttentionConfig
    from workbench.attribution.suppression import SuppressionConfig
    from workbench.labels.rollouts import RolloutConfig

    adoc, sdoc, rdoc = field_docs(AttentionConfig), field_docs(SuppressionConfig), field_docs(RolloutConfig)
    p.add_argument("--traces", required=True, help="a traces file (.jsonl or .parquet, workbench.traces.save_traces)")
    p.add_argument("--method", required=True, choices=METHODS, help="which attribution to compute")
    p.add_argument("--out", required=True, help="output table, .parquet or .csv (written atomically)")
    p.add_argument("--model", default=None, help="model folder or hub name in the local cache (default: embedded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--layers", nargs="+", type=int, default=None, help=adoc.get("layers"))
    p.add_argument("--key-reduce", default="mean", choices=("mean", "sum"), help=adoc.get("key_reduce"))
    p.add_argument("--query-reduce", default="mean", choices=("mean", "max"), help=adoc.get("query_reduce"))
    p.add_argument("--queries", default="all", choices=("all", "read"), help=adoc.get("queries"))
    p.add_argument("--token-reduce", default="mean", choices=("mean", "max"), help=sdoc.get("token_reduce"))
    p.add_argument("--min-distance", type=int, default=2, help="receivers: leave out queries closer than this")
    p.add_argument("--top-heads", type=int, default=3, help="receivers: how many top-kurtosis heads to average")
    p.add_argument(
        "--max-batch-tokens", type=int, default=None, help="padded tokens per forward (default: the method's own)"
    )
    p.add_argument("--n-rollouts", type=int, default=RolloutConfig.n_rollouts, help=rdoc.get("n_rollouts"))
    p.add_argument("--seed", type=int, default=0, help="resampling: seed of the rollouts")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _with_dependencies(traces: list) -> list:
    """Toy traces with dependency labels joined; other traces unchanged."""
    from workbench.labels import dependency_labels, join_labels

    try:
        return join_labels(traces, dependency_labels(traces))
    except ValueError:
        return traces


def _batch(args: argparse.Namespace) -> dict:
    return {} if args.max_batch_tokens is None else {"max_batch_tokens": args.max_batch_tokens}


def _compute(args: argparse.Namespace, model, traces: list):
    import workbench.attribution as A
    from workbench.labels.rollouts import RolloutConfig
    from workbench.traces import GenerationConfig

    progress = not args.no_progress
    if args.method in ("attention", "receivers"):
        cfg = A.AttentionConfig(
            layers=args.layers,
            key_reduce=args.key_reduce,
            query_reduce=args.query_reduce,
            queries=args.queries,
            progress=progress,
            **_batch(args),
        )
        frame = A.attention_frame(A.step_attention(model, traces, cfg))
        if args.method == "attention":
            return frame
        vert = A.vertical_scores(frame, min_distance=args.min_distance)
        heads = A.top_heads(A.head_kurtosis(vert), args.top_heads)
        return A.receiver_scores(vert, heads).assign(heads=str(heads))
    if args.method == "suppression":
        cfg = A.SuppressionConfig(token_reduce=args.token_reduce, progress=progress, **_batch(args))
        return A.suppression_frame(A.step_suppression(model, traces, cfg))
    gen = GenerationConfig(max_new_tokens=128, temperature=1.0, batch_size=256, seed=args.seed)
    rollouts = RolloutConfig(n_rollouts=args.n_rollouts, generation=gen)
    return A.resampling_importance(model, traces, A.ResamplingConfig(rollouts=rollouts, progress=progress))


def run(args: argparse.Namespace) -> int:
    """Load traces and model, compute, write ``--out``; bad input fails before anything is written."""
    from workbench.models import load_model
    from workbench.traces import load_traces

    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise ValueError(f"--out {out}: use a .parquet or .csv file name")
    if not Path(args.traces).is_file():
        raise ValueError(f"--traces {args.traces}: no such file; give a traces file (.jsonl or .parquet)")
    traces = _with_dependencies([t for t in load_traces(args.traces) if t.steps])
    if not traces:
        raise ValueError(f"--traces {args.traces}: no trace has steps; segment the traces first")
    model = load_model(args.model, device=args.device)
    frame = _compute(args, model, traces)
    atomic_write_table(frame, out)
    print(f"{args.method}: {len(frame)} rows -> {out}")
    return 0
