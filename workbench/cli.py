"""The ``workbench`` command: batch entry points that call the same functions as the notebooks.

Each subcommand is registered with :func:`register_command` (a name, a function adding its flags to an
argparse subparser, and a function running it), so other parts of the package add theirs without
touching the others. Config flags come from the config dataclasses themselves (:func:`add_config_flags`:
help from each field's docstring, default from the field), so the CLI and the Python API never disagree.

Every command checks its inputs before it loads a model, and a failure is one line on stderr,
``workbench: error: ...``, with exit status 2 (``workbench --debug ...`` shows the traceback)::

    workbench generate --toy 64 --out artifacts/runs/traces.jsonl
    workbench label --traces artifacts/runs/traces.jsonl --source keywords --out artifacts/runs/traces.jsonl
    workbench capture --traces artifacts/runs/traces.jsonl --out artifacts/runs/store --layers 1 2

``workbench capture`` captures data-parallel under ``torchrun`` (one process per GPU; gloo on CPU)::

    torchrun --standalone --nproc_per_node 2 -m workbench.cli capture --traces traces.jsonl --out store
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

__all__ = ["main", "register_command", "field_docs", "add_config_flags", "config_from_args", "CliError", "plain_text"]

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def register_command(
    name: str, help: str, configure: Callable[[argparse.ArgumentParser], None], run: Callable[[argparse.Namespace], int]
) -> None:
    """Add ``workbench {name}``: ``configure`` adds flags to its parser, ``run`` gets the parsed args."""
    _COMMANDS[name] = (help, configure, run)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, as plain text (read from its source; empty when unavailable).

    reST markup is removed (````code````, ``:func:`~a.b```) so ``--help`` reads cleanly; ``%`` is escaped for argparse.
    """
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = plain_text(nxt.value.value).replace("%", "%%")
    return docs


_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")


def plain_text(doc: str) -> str:
    """Docstring text without reST markup, on one line: ````x```` → x, ``:func:`~a.b.c``` → c."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1), doc)
    return " ".join(text.replace("``", "").split())


class CliError(Exception):
    """Bad command-line input: printed as one ``workbench: error: ...`` line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``workbench: error: ...``, exit 2) and defaults shown in help."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        sys.stderr.write(f"workbench: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


class _Formatter(argparse.HelpFormatter):
    """Shows each flag's default (unless it is None/False or the help already names it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = getattr(action, "show_default", action.default)
        if default is None or default is False or default is argparse.SUPPRESS or "default" in text:
            return text
        if action.nargs == 0:
            return text
        if isinstance(default, (tuple, list)):  # as typed on the command line
            default = " ".join(repr(v) if isinstance(v, str) and " " in v else str(v) for v in default) or "none"
        return f"{text} (default: {str(default).replace('%', '%%')})"


def _field_types(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _flag_spec(tp) -> tuple[type, bool] | None:
    """``(element type, is_list)`` of a config field's annotation; None for types the CLI cannot express."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _flag_spec(args[0]) if len(args) == 1 else None
    if typing.get_origin(tp) is tuple and args and args[-1] is not Ellipsis:
        return None
    if typing.get_origin(tp) is tuple:
        return (args[0], True) if args[0] in (int, float, str) else None
    return (tp, False) if tp in (int, float, str, bool) else None


def add_config_flags(
    p: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Sequence[str] = (),
    choices: dict[str, Sequence] | None = None,
    defaults: dict[str, object] | None = None,
) -> list[str]:
    """One flag per field of the config dataclass ``cls`` (``--max-len`` for ``max_len``); returns the fields.

    Help is the field's docstring and the default shown is the dataclass's own (or ``defaults[field]``), so
    the CLI and the Python API cannot disagree. Flags not given are left out of the parsed args, and
    :func:`config_from_args` fills them from the same defaults. Booleans that default to True get ``--no-x``.
    """
    docs, hints, added = field_docs(cls), _field_types(cls), []
    for f in dataclasses.fields(cls):
        spec = _flag_spec(hints[f.name])
        if f.name in exclude or f.name.startswith("_") or spec is None or not f.init:
            continue
        tp, is_list = spec
        default = (defaults or {}).get(f.name, f.default)
        flag = "--" + f.name.replace("_", "-")
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": docs.get(f.name)}
        if tp is bool:
            kw["action"] = "store_false" if default else "store_true"
            if default:  # a field that defaults to True is turned off by --no-x
                flag, kw["help"] = f"--no-{f.name.replace('_', '-')}", f"turn off: {docs.get(f.name, f.name)}"
        else:
            metavar = f.name.upper().removesuffix("S") if is_list else f.name.upper()
            kw |= {"type": tp, "nargs": "+" if is_list else None, "metavar": metavar}
            if f.name in (choices or {}):
                kw["choices"] = choices[f.name]
        action = p.add_argument(flag, **kw)
        action.show_default = default
        added.append(f.name)
    return added


def config_from_args(base, args: argparse.Namespace, fields: Sequence[str], **overrides):
    """``base`` (a config instance) with the flags of ``fields`` that were given, then ``overrides``.

    Invalid values raise :class:`CliError` with the config's own message, before any model is loaded.
    """
    given = {f: getattr(args, f) for f in fields if hasattr(args, f)}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    try:
        return dataclasses.replace(base, **given, **overrides)
    except (TypeError, ValueError) as e:
        raise CliError(str(e)) from e


def _common_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder or hub name in the local cache (default: embedded)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument(
        "--model-dtype", default=None, help="dtype to run the model in (default: bf16 on GPU, float32 on CPU)"
    )


def _existing_file(path: str, what: str, suffixes: Sequence[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{what} {path}: no such file")
    if p.suffix not in suffixes:
        raise CliError(f"{what} {path}: use a {' or '.join(suffixes)} file")
    return p


def _read_traces(path: str) -> list:
    """Traces from a file, refused when missing, of the wrong kind, or empty (before any model loads)."""
    from workbench.traces import load_traces

    traces = load_traces(_existing_file(path, "--traces", (".jsonl", ".parquet")))
    if not traces:
        raise CliError(f"--traces {path}: the file holds no traces; nothing to do")
    return traces


def _traces_out(path: str) -> Path:
    out = Path(path)
    if out.suffix not in (".jsonl", ".parquet"):
        raise CliError(f"--out {path}: use a .jsonl or .parquet file for traces")
    if out.is_dir():
        raise CliError(f"--out {path}: is a directory; give a file name ending in .jsonl or .parquet")
    return out


def _load_model(args: argparse.Namespace, device: str | None = None):
    from workbench.models import load_model

    return load_model(args.model, device=device or args.device, dtype=args.model_dtype)


def _print_summary(summary: dict) -> None:
    print(json.dumps(summary, default=str))


# ---- generate --------------------------------------------------------------------------------------


def _configure_generate(p: argparse.ArgumentParser) -> None:
    from workbench.traces import GenerationConfig

    src = p.add_argument_group("input").add_mutually_exclusive_group(required=True)
    src.add_argument("--toy", type=int, metavar="N", help="sample N held-out toy problems; checker-labelled")
    src.add_argument(
        "--prompts", metavar="FILE", help="prompts: .jsonl records with 'prompt' (optional 'problem_id', "
        "'gold_answer'), or .txt with one prompt per line",
    )  # fmt: skip
    p.add_argument("--toy-seed", type=int, default=None, help="seed of the toy problems (default: the held-out range)")
    p.add_argument("--out", required=True, help="traces file to write (.jsonl or .parquet)")
    p.add_argument("--segmenter", default="newline", help="how --prompts completions are cut into steps")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _common_model_flags(p)
    add_config_flags(
        p.add_argument_group("sampling (workbench.traces.GenerationConfig)"),
        GenerationConfig,
        defaults={"max_new_tokens": "128; 160 with --toy, as generate_toy_traces"},
    )


def _read_prompts(path: str) -> tuple[list[str], list[str] | None, list[str | None] | None]:
    """Prompts (and ids, gold answers) from a .jsonl or .txt file; refused when missing or empty."""
    p = _existing_file(path, "--prompts", (".jsonl", ".txt"))
    if p.suffix == ".txt":
        prompts = [line for line in p.read_text().splitlines() if line.strip()]
        ids = golds = None
    else:
        records = []
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CliError(f"--prompts {path}, line {n}: not JSON ({e.msg})") from None
                if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
                    raise CliError(f"--prompts {path}, line {n}: needs a 'prompt' string field")
                records.append(rec)
        prompts = [r["prompt"] for r in records]
        ids = [str(r.get("problem_id", r.get("id", f"prompt{i}"))) for i, r in enumerate(records)]
        golds = [None if r.get("gold_answer") is None else str(r["gold_answer"]) for r in records]
    if not prompts:
        raise CliError(f"--prompts {path}: the file holds no prompts; nothing to do")
    return prompts, ids, golds


def _run_generate(args: argparse.Namespace) -> int:
    from workbench.labels import generate_toy_traces
    from workbench.labels.checker import TOY_GENERATION
    from workbench.toy import TaskConfig
    from workbench.toy.evaluate import HELDOUT_SEED, heldout_problems
    from workbench.traces import GenerationConfig, generate_traces, get_segmenter, save_traces

    out = _traces_out(args.out)
    fields = [f.name for f in dataclasses.fields(GenerationConfig)]
    cfg = config_from_args(TOY_GENERATION if args.toy is not None else GenerationConfig(), args, fields)
    if args.toy is not None:
        if args.toy < 1:
            raise CliError(f"--toy {args.toy}: give at least 1 problem")
        seed = HELDOUT_SEED if args.toy_seed is None else args.toy_seed
        problems = heldout_problems(TaskConfig(), args.toy, seed=seed)
    else:
        prompts, ids, golds = _read_prompts(args.prompts)
        try:
            get_segmenter(args.segmenter)
        except (KeyError, ValueError) as e:
            raise CliError(f"--segmenter {args.segmenter}: {e}") from None
    model = _load_model(args)
    if args.toy is not None:
        traces = generate_toy_traces(model, problems, config=cfg, progress=not args.no_progress)
    else:
        traces = generate_traces(
            model, prompts, config=cfg, problem_ids=ids, gold_answers=golds, segmenter=args.segmenter,
            progress=not args.no_progress,
        )  # fmt: skip
    save_traces(traces, out)
    n_steps = sum(len(t.steps) for t in traces)
    _print_summary({"out": str(out), "traces": len(traces), "steps": n_steps})
    return 0


register_command(
    "generate", "sample traces from a model (toy problems or a prompts file)", _configure_generate, _run_generate
)


# ---- label -----------------------------------------------------------------------------------------

LABEL_SOURCES = ("checker", "keywords")


def _configure_label(p: argparse.ArgumentParser) -> None:
    from workbench.labels import KeywordConfig

    p.add_argument("--traces", required=True, help="traces file to label (.jsonl or .parquet)")
    p.add_argument(
        "--out", required=True, help="labelled traces file to write (.jsonl or .parquet; may equal --traces)"
    )
    p.add_argument(
        "--source", nargs="+", required=True, choices=LABEL_SOURCES,
        help="checker: the toy task's checker (kind, correct, logical, first_error, prefix_correct, viable); "
        "keywords: reflection/backtracking/verification by word lists",
    )  # fmt: skip
    add_config_flags(p.add_argument_group("keywords (workbench.labels.KeywordConfig)"), KeywordConfig)


def _run_label(args: argparse.Namespace) -> int:
    from workbench.labels import KeywordConfig, join_labels, keyword_labels, label_with_checker
    from workbench.traces import save_traces

    traces = _read_traces(args.traces)
    out = _traces_out(args.out)
    kcfg = config_from_args(KeywordConfig(), args, [f.name for f in dataclasses.fields(KeywordConfig)])
    if "checker" in args.source:
        try:
            traces = [label_with_checker(t) for t in traces]
        except ValueError as e:
            raise CliError(f"--source checker needs toy traces segmented by line: {e}") from None
    if "keywords" in args.source:
        traces = join_labels(traces, keyword_labels(traces, kcfg))
    save_traces(traces, out)
    names = sorted({k for t in traces for s in t.steps for k in s.labels})
    _print_summary({"out": str(out), "traces": len(traces), "labels": names})
    return 0


register_command(
    "label", "add step labels to a traces file (toy checker, keyword behaviours)", _configure_label, _run_label
)


# ---- capture ---------------------------------------------------------------------------------------


def _configure_capture(p: argparse.ArgumentParser) -> None:
    from workbench.capture import POOLINGS, CaptureConfig, TokenFeatureConfig

    tdoc = field_docs(TokenFeatureConfig)
    src = p.add_argument_group("input").add_mutually_exclusive_group(required=True)
    src.add_argument("--traces", help="a traces file (.jsonl or .parquet, workbench.traces.save_traces)")
    src.add_argument("--toy", type=int, metavar="N", help="generate N toy-task traces (workbench.toy) instead")
    p.add_argument("--toy-seed", type=int, default=0, help="seed of the generated toy traces")
    p.add_argument("--out", required=True, help="the store directory (created, or appended to / resumed)")
    _common_model_flags(p)
    add_config_flags(
        p.add_argument_group("capture (workbench.capture.CaptureConfig)"),
        CaptureConfig,
        exclude=("token_features",),
        choices={"poolings": POOLINGS},
    )
    tok = p.add_argument_group("token features (workbench.capture.TokenFeatureConfig)")
    tok.add_argument("--token-hooks", nargs="+", default=(), metavar="HOOK", help=tdoc.get("hooks"))
    tok.add_argument("--top-k", type=int, default=TokenFeatureConfig.top_k, help=tdoc.get("top_k"))
    tok.add_argument("--attn-prev", type=int, default=TokenFeatureConfig.attn_prev, help=tdoc.get("attn_prev"))
    tok.add_argument("--attn-layers", nargs="+", type=int, default=(), metavar="LAYER", help=tdoc.get("attn_layers"))


def _model_layers(spec: str | None) -> int | None:
    """The model's layer count from its config.json, without loading it (None when unreadable)."""
    from workbench.models import resolve_model

    resolved = resolve_model(spec)  # a missing model fails here, before anything is loaded
    try:
        cfg = json.loads((resolved.path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    n = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    return n if isinstance(n, int) else None


def _capture_config(args: argparse.Namespace):
    from workbench.capture import CaptureConfig, TokenFeatureConfig
    from workbench.models.hookpoints import hot_path_names

    try:
        tf = TokenFeatureConfig(
            hooks=tuple(args.token_hooks), top_k=args.top_k, attn_prev=args.attn_prev,
            attn_layers=tuple(args.attn_layers),
        )  # fmt: skip
    except (TypeError, ValueError) as e:
        raise CliError(str(e)) from None
    fields = [f.name for f in dataclasses.fields(CaptureConfig)]
    cfg = config_from_args(CaptureConfig(), args, fields, token_features=tf if tf.enabled else None)
    n_layers = _model_layers(args.model)
    if n_layers is not None:
        try:
            hooks = [*cfg.resolve_hooks(n_layers), *tf.hooks]
        except ValueError as e:
            raise CliError(str(e)) from None
        unknown = [h for h in hooks if h not in hot_path_names(n_layers)]
        if unknown:
            raise CliError(f"--hooks: {unknown} are not hot-path hooks of this {n_layers}-layer model (docs/hooks.md)")
    return cfg


def _run_capture(args: argparse.Namespace) -> int:
    import torch

    from workbench.capture import capture
    from workbench.capture.distributed import init_from_env

    cfg = _capture_config(args)  # every input is checked before the model loads
    if args.traces:
        traces = _read_traces(args.traces)
    else:
        from workbench.labels import traces_from_samples
        from workbench.toy import TaskConfig, generate_samples

        if args.toy < 1:
            raise CliError(f"--toy {args.toy}: give at least 1 trace")
        traces = traces_from_samples(generate_samples(TaskConfig(), args.toy, seed=args.toy_seed))
    if Path(args.out).is_file():
        raise CliError(f"--out {args.out}: is a file; give a directory for the store")
    di = init_from_env()
    device = args.device
    if di.world_size > 1 and torch.cuda.is_available() and device in (None, "cuda"):
        device = f"cuda:{di.local_rank}"
    model = _load_model(args, device)
    try:
        result = capture(traces, model, args.out, cfg)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if result.rank == 0:
        _print_summary({k: str(v) if k == "path" else v for k, v in dataclasses.asdict(result).items()})
    return 0


register_command("capture", "capture step activations of traces into a store", _configure_capture, _run_capture)


# ---- attribute -------------------------------------------------------------------------------------


def _configure_attribute(p: argparse.ArgumentParser) -> None:
    from workbench.attribution.command import configure

    configure(p, field_docs)


def _run_attribute(args: argparse.Namespace) -> int:
    from workbench.attribution.command import run

    return run(args)


register_command(
    "attribute",
    "step-to-step attribution of traces (attention, receivers, suppression, resampling) as a tidy table",
    _configure_attribute,
    _run_attribute,
)


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


# ---- train-sae -------------------------------------------------------------------------------------


def _configure_train_sae(p: argparse.ArgumentParser) -> None:
    from workbench.sae.command import configure

    configure(p, field_docs)


def _run_train_sae(args: argparse.Namespace) -> int:
    from workbench.sae.command import run

    return run(args)


register_command(
    "train-sae", "train step SAEs (sae-lens) on a store's step vectors, per hook", _configure_train_sae, _run_train_sae
)


# ---- demo ------------------------------------------------------------------------------------------


def _configure_demo(p: argparse.ArgumentParser) -> None:
    from workbench.demo import configure_parser

    configure_parser(p)


def _run_demo(args: argparse.Namespace) -> int:
    from workbench.demo import config_from_args, run_demo

    run_demo(config_from_args(args))
    return 0


register_command("demo", "the whole pipeline, ending in an offline report", _configure_demo, _run_demo)


# ---- steer -----------------------------------------------------------------------------------------


def _configure_steer(p: argparse.ArgumentParser) -> None:
    from workbench.steering.command import configure

    configure(p, field_docs)


def _run_steer(args: argparse.Namespace) -> int:
    from workbench.steering.command import run

    return run(args)


register_command(
    "steer", "steering sweep: alpha grid x toy problems, with a random control", _configure_steer, _run_steer
)


# ---- entry point -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="workbench", description=plain_text(__doc__.splitlines()[0]))
    parser.add_argument("--debug", action="store_true", help="show the full traceback when a command fails")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, configure, _) in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        configure(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``workbench COMMAND ...``; returns the exit status (2 for bad input or a failed command).

    A failure prints one line, ``workbench: error: ...``; ``--debug`` shows the traceback instead.
    """
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command][2](args)
    except KeyboardInterrupt:
        sys.stderr.write("workbench: interrupted\n")
        return 130
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        what = str(e) if isinstance(e, CliError) else f"{type(e).__name__}: {e}"
        sys.stderr.write(f"workbench: error: {' '.join(what.split())} (--debug shows the traceback)\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
