"""Benchmark: generation with step tracking against plain Hugging Face ``generate``, in the same run.

    python benchmarks/generation.py [--n 64] [--batch-size 32] [--single 16] [--repeats 3] [--model PATH]

Three ways to sample the same toy prompts with the same settings (temperature 1, top-p 1, KV cache):

- ``workbench``: :func:`workbench.traces.generate_toy_traces` — batched sampling, then segmentation, token
  alignment and checker labels for every trace (everything a researcher gets back);
- ``plain HF``: tokenise (left padding), ``model.generate`` at the same batch size, ``batch_decode``; once in
  the given order and once with the prompts sorted by length as the workbench batches them;
- ``one at a time``: the workbench path with batch size 1 (a loop over traces), on ``--single`` prompts.

Throughput counts generated tokens up to and including end-of-sequence (padding after a finished row is
not counted). Each measurement is the median of ``--repeats`` runs after one warm-up, interleaved so that
background load hits all three alike. Writes ``benchmarks/results/generation.md`` (atomically).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from workbench.labels import generate_toy_traces
from workbench.models import load_model
from workbench.toy.evaluate import heldout_problems
from workbench.toy.task import TaskConfig
from workbench.traces import GenerationConfig
from workbench.traces.io import atomic_write_bytes

RESULTS = Path(__file__).parent / "results" / "generation.md"


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One way of generating: sequences, tokens and the median wall time."""

    name: str
    """Which method."""
    sequences: int
    """Sequences generated per run."""
    tokens: int
    """Generated tokens per run (end-of-sequence included, padding not; seeded, so equal in every run)."""
    seconds: float
    """Median wall time of a run."""

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def plain_hf(model, prompts: list[str], cfg: GenerationConfig) -> int:
    """Plain ``generate`` in batches of ``cfg.batch_size``; returns generated tokens (eos included)."""
    tok, tokens = model.tokenizer, 0
    for i in range(0, len(prompts), cfg.batch_size):
        enc = tok(prompts[i : i + cfg.batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(cfg.seed + i)
        with torch.inference_mode():
            out = model.hf_model.generate(
                **enc,
                **cfg.hf_kwargs(),
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                use_cache=True,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        tok.batch_decode(new, skip_special_tokens=True)
        ended = (new == tok.eos_token_id).int().cumsum(-1)
        tokens += int(((ended == 0) | ((ended == 1) & (new == tok.eos_token_id))).sum())
    return tokens


def workbench(model, problems, cfg: GenerationConfig) -> int:
    traces = generate_toy_traces(model, problems, config=cfg, progress=False)
    return sum(t.generation["n_tokens"] for t in traces)


def measure(runs: dict, repeats: int) -> list[Measurement]:
    """Warm up every runner once, then time ``repeats`` interleaved rounds; median seconds per runner."""
    for fn, _ in runs.values():
        fn()
    times = {name: [] for name in runs}
    tokens = {}
    for _ in range(repeats):
        for name, (fn, _) in runs.items():
            t0 = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return [
        Measurement(name=n, sequences=runs[n][1], tokens=tokens[n], seconds=statistics.median(times[n])) for n in runs
    ]


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def render(results: list[Measurement], args, model, note: str) -> str:
    plain = next(m for m in results if m.name == "plain HF").tokens_per_s
    rows = "\n".join(
        f"| {m.name} | {m.sequences} | {m.tokens} | {m.seconds:.2f} | {m.tokens_per_s:,.0f} "
        f"| {m.tokens_per_s / plain:.2f}× |"
        for m in results
    )
    wb = next(m for m in results if m.name == "workbench").tokens_per_s
    single = next(m for m in results if m.name == "one at a time").tokens_per_s
    plain_sorted = next(m for m in results if m.name.startswith("plain HF, prompts sorted")).tokens_per_s
    return f"""# Generation throughput: workbench vs plain Hugging Face `generate`

- date: {datetime.date.today().isoformat()}
- machine: {machine()}
- model: `{model.resolved.path.name}` ({model.config.num_hidden_layers} layers, d_model {model.d_model}, \
{model.dtype}, device {model.device}), weights sha256 `{model.weights_sha256[:12]}`
- command: `python benchmarks/generation.py --n {args.n} --batch-size {args.batch_size} --single {args.single} \
--repeats {args.repeats}{f" --threads {args.threads}" if args.threads else ""}`
- settings: {args.n} toy prompts (2-5 statements), temperature 1.0, top-p 1.0, max_new_tokens {args.max_new_tokens}, \
seed 0, KV cache on; median of {args.repeats} interleaved runs after a warm-up
- {note}

| method | sequences | generated tokens | seconds | tokens/s | vs plain HF |
|---|---:|---:|---:|---:|---:|
{rows}

Workbench / plain HF at batch {args.batch_size}: **{wb / plain:.2f}×** (goal ≥ 0.8×); against plain HF on the
same length-sorted batches: **{wb / plain_sorted:.2f}×**.
Batched workbench / one trace at a time: **{wb / single:.1f}×**.

The workbench figure includes segmentation, token alignment and checker labels of every trace; plain HF
only tokenises, generates and decodes. The workbench sorts prompts by token length before batching (less
padding, and rows of a batch tend to finish together), so the row with plain HF on length-sorted prompts
isolates the workbench's own overhead. Sampled lengths differ between methods (batch composition changes
the random stream), so compare tokens/s, not seconds.
"""


def main(argv: list[str] | None = None) -> list[Measurement]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=64, help="prompts for the batched runs (64)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per generate call (32)")
    parser.add_argument("--single", type=int, default=16, help="prompts for the one-at-a-time loop (16)")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="generation limit (160)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method (3)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    parser.add_argument("--note", default="", help="a line about the conditions (e.g. background load)")
    parser.add_argument("--out", default=None, help=f"write the markdown here (e.g. {RESULTS}); default: print only")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model)
    problems = heldout_problems(TaskConfig(), args.n, seed=30_000)
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=1.0, batch_size=args.batch_size)
    sorted_prompts = sorted((p.prompt for p in problems), key=lambda s: len(model.tokenizer(s)["input_ids"]))
    runs = {
        "workbench": (lambda: workbench(model, problems, cfg), args.n),
        "plain HF": (lambda: plain_hf(model, [p.prompt for p in problems], cfg), args.n),
        "plain HF, prompts sorted by length": (lambda: plain_hf(model, sorted_prompts, cfg), args.n),
        "one at a time": (
            lambda: workbench(model, problems[: args.single], replace(cfg, batch_size=1)),
            args.single,
        ),
    }
    results = measure(runs, args.repeats)
    text = render(results, args, model, args.note or "no other load noted")
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    print(text)
    return results


if __name__ == "__main__":
    main()
