"""The ``workbench`` command: batch entry points that call the same functions as the notebooks.

Each subcommand is registered with :func:`register_command` (a name, a function adding its flags to an
argparse subparser, and a function running it), so other parts of the package add theirs without
touching the others. Flag help is taken from the config dataclasses' field docstrings, so the config
and the CLI never disagree.

``workbench capture`` runs :func:`workbench.capture.capture`; under ``torchrun`` it captures data-parallel
(one process per GPU; gloo on CPU)::

    workbench capture --toy 200 --out artifacts/runs/store --layers 1 3
    torchrun --standalone --nproc_per_node 2 -m workbench.cli capture --traces traces.jsonl --out store
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import cache

__all__ = ["main", "register_command", "field_docs"]

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register_command(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], int]
) -> None:
    """Add ``workbench {name}``: ``configure`` adds flags to its parser, ``run`` gets the parsed args."""
    _COMMANDS[name] = (help, configure, run)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (read from its source; empty when unavailable)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split()).replace("%", "%%")
    return docs


# ---- capture ---------------------------------------------------------------------------------------


def _configure_capture(p: argparse.ArgumentParser) -> None:
    from workbench.capture import POOLINGS, CaptureConfig, TokenFeatureConfig

    doc, tdoc = field_docs(CaptureConfig), field_docs(TokenFeatureConfig)
    src = p.add_argument_group("input").add_mutually_exclusive_group(required=True)
    src.add_argument("--traces", help="a traces file (.jsonl or .parquet, workbench.traces.save_traces)")
    src.add_argument("--toy", type=int, metavar="N", help="generate N toy-task traces (workbench.toy) instead")
    p.add_argument("--toy-seed", type=int, default=0, help="seed of the generated toy traces")
    p.add_argument("--out", required=True, help="the store directory (created, or appended to / resumed)")
    p.add_argument("--model", default=None, help="model folder or hub name in the local cache (default: embedded)")
    p.add_argument(
        "--device", default=None, help="cpu or cuda (default: cuda when present; cuda:LOCAL_RANK under torchrun)"
    )
    p.add_argument(
        "--model-dtype", default=None, help="dtype to run the model in (default: bf16 on GPU, float32 on CPU)"
    )
    p.add_argument("--hooks", nargs="+", default=(), help=doc.get("hooks"))
    p.add_argument("--layers", nargs="+", type=int, default=None, help=doc.get("layers"))
    p.add_argument("--poolings", nargs="+", default=POOLINGS, choices=POOLINGS, help=doc.get("poolings"))
    p.add_argument("--batch-size", type=int, default=CaptureConfig.batch_size, help=doc.get("batch_size"))
    p.add_argument(
        "--max-batch-tokens", type=int, default=CaptureConfig.max_batch_tokens, help=doc.get("max_batch_tokens")
    )
    p.add_argument("--max-len", type=int, default=None, help=doc.get("max_len"))
    p.add_argument("--dtype", default=None, help=doc.get("dtype"))
    p.add_argument("--shard-mb", type=float, default=CaptureConfig.shard_mb, help=doc.get("shard_mb"))
    p.add_argument("--window", type=int, default=CaptureConfig.window, help=doc.get("window"))
    p.add_argument("--logit-stats", action="store_true", help=doc.get("logit_stats"))
    p.add_argument("--token-hooks", nargs="+", default=(), help=tdoc.get("hooks"))
    p.add_argument("--top-k", type=int, default=0, help=tdoc.get("top_k"))
    p.add_argument("--attn-prev", type=int, default=0, help=tdoc.get("attn_prev"))
    p.add_argument("--attn-layers", nargs="+", type=int, default=(), help=tdoc.get("attn_layers"))
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _load_traces(args: argparse.Namespace, model) -> list:
    if args.traces:
        from workbench.traces import load_traces

        return load_traces(args.traces)
    from workbench.labels import traces_from_samples
    from workbench.toy import TaskConfig, generate_samples

    return traces_from_samples(generate_samples(TaskConfig(), args.toy, seed=args.toy_seed))


def _run_capture(args: argparse.Namespace) -> int:
    import torch

    from workbench.capture import CaptureConfig, TokenFeatureConfig, capture
    from workbench.capture.distributed import init_from_env
    from workbench.models import load_model

    di = init_from_env()
    device = args.device
    if di.world_size > 1 and torch.cuda.is_available() and device in (None, "cuda"):
        device = f"cuda:{di.local_rank}"
    tf = TokenFeatureConfig(
        hooks=tuple(args.token_hooks), top_k=args.top_k, attn_prev=args.attn_prev, attn_layers=tuple(args.attn_layers)
    )
    cfg = CaptureConfig(
        hooks=tuple(args.hooks),
        layers=tuple(args.layers) if args.layers is not None else None,
        poolings=tuple(args.poolings),
        logit_stats=args.logit_stats,
        token_features=tf if tf.enabled else None,
        max_batch_tokens=args.max_batch_tokens,
        batch_size=args.batch_size,
        max_len=args.max_len,
        dtype=args.dtype,
        window=args.window,
        shard_mb=args.shard_mb,
        progress=not args.no_progress,
    )
    model = load_model(args.model, device=device, dtype=args.model_dtype)
    try:
        result = capture(_load_traces(args, model), model, args.out, cfg)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if result.rank == 0:
        print(json.dumps({k: str(v) if k == "path" else v for k, v in asdict(result).items()}))
    return 0


register_command("capture", "capture step activations of traces into a store", _configure_capture, _run_capture)


# ---- probe / train-head ----------------------------------------------------------------------------


def _configure_probe(p: argparse.ArgumentParser) -> None:
    from workbench.probes.command import configure

    configure(p, field_docs)


def _run_probe(args: argparse.Namespace) -> int:
    from workbench.probes.command import run

    return run(args)


def _configure_train_head(p: argparse.ArgumentParser) -> None:
    from workbench.heads.command import configure

    configure(p, field_docs)


def _run_train_head(args: argparse.Namespace) -> int:
    from workbench.heads.command import run

    return run(args)


register_command(
    "probe", "layer sweep: a probe per hook and pooling of a store, as a table", _configure_probe, _run_probe
)
register_command(
    "train-head", "train an uncertainty head on a store's token features", _configure_train_head, _run_train_head
)


# ---- entry point -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, configure, _) in _COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``workbench COMMAND ...``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
