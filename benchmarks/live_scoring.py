"""Benchmark: the cost of scoring steps live during generation, against plain ``generate`` in the same run.

    python benchmarks/live_scoring.py [--batches 8,16,32] [--repeats 9] [--threads 1] [--model PATH] [--out FILE]

:func:`workbench.heads.live.generate_scored` samples exactly the tokens a plain ``generate`` call samples (same
prompts, seed and settings) while hooks copy the head's features from the generating forwards and a
stopping criterion scores each step once its boundary token has been read. Each repeat runs plain generate
and live scoring back to back (alternating which goes first); the ratio is taken per pair and the median
over pairs is reported, so slow drifts of the machine's load hit both sides alike.

The head's weights do not change its cost, so heads of several sizes are built untrained: the work per
generated token is then compared with the model's (multiply-adds of the weight matrices each token passes,
embedding look-ups excluded). The overhead of live scoring grows with that ratio; on the embedded model a
head is a sizeable fraction of a 4-layer, 128-wide transformer. Without ``--out`` nothing is written.
"""

# ruff: noqa: E501  (markdown table rows)

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from transformers import StoppingCriteriaList

from workbench.heads import HeadConfig, UncertaintyHead
from workbench.heads.live import generate_scored
from workbench.models import load_model
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig
from workbench.traces.generate import left_pad, rng_devices
from workbench.traces.io import atomic_write_bytes


def linear_macs(module: nn.Module) -> int:
    """Multiply-adds per token of every ``nn.Linear`` (and attention in-projection) inside ``module``."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Linear):
            total += m.weight.numel()
        elif isinstance(m, nn.MultiheadAttention):
            total += m.in_proj_weight.numel()  # out_proj is an nn.Linear, counted above
    return total


def heads_to_measure(model) -> dict[str, UncertaintyHead]:
    last = f"blocks.{model.n_layers - 1}.hook_resid_post"
    every = tuple(f"blocks.{i}.hook_resid_post" for i in range(model.n_layers))
    cfgs = {
        f"all {model.n_layers} layers, width 128": HeadConfig(hooks=every, width=128, n_heads=4),
        "last layer, width 128": HeadConfig(hooks=(last,), width=128, n_heads=4),
        "last layer, width 64": HeadConfig(hooks=(last,), width=64, n_heads=4),
    }
    torch.manual_seed(0)
    return {name: UncertaintyHead.build(c, c.n_features(model.d_model)).eval() for name, c in cfgs.items()}


def measure(model, head, prompts, config: GenerationConfig, repeats: int) -> dict:
    """Median over back-to-back pairs of (live scoring time / plain generate time)."""
    tok = model.tokenizer
    batch = left_pad(tok(list(prompts), add_special_tokens=False)["input_ids"], tok.pad_token_id)
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}

    class _Nothing:  # the same stopping-criteria plumbing without the scorer
        def __call__(self, input_ids, scores=None, **kw):
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    def plain():
        with torch.random.fork_rng(devices=rng_devices(model.device)):
            torch.manual_seed(config.seed * 1_000_003)
            return model.generate(*batch, stopping_criteria=StoppingCriteriaList([_Nothing()]), **kwargs)

    def live():
        return generate_scored(model, head, prompts, config)

    plain(), live()  # warm-up
    ratios, plain_s, live_s, steps = [], [], [], 0
    for i in range(repeats):
        spent = {}
        for name in ("plain", "live") if i % 2 == 0 else ("live", "plain"):  # alternate which goes first
            t0 = time.perf_counter()
            res = plain() if name == "plain" else live()
            spent[name] = time.perf_counter() - t0
            if name == "live":
                steps = len(res.steps)
        plain_s.append(spent["plain"])
        live_s.append(spent["live"])
        ratios.append(spent["live"] / spent["plain"])
    return {
        "plain_s": statistics.median(plain_s),
        "live_s": statistics.median(live_s),
        "ratio": statistics.median(ratios),
        "ratio_lo": min(ratios),
        "ratio_hi": max(ratios),
        "steps": steps,
    }


def run(args) -> str:
    torch.set_num_threads(args.threads)
    t_start = time.time()
    load = os.getloadavg()[0]
    model = load_model(args.model, device="cpu")
    model_macs = linear_macs(model.hf_model.model.layers) + model.hf_model.lm_head.weight.numel()
    config = GenerationConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=4)
    rows = []
    for name, head in heads_to_measure(model).items():
        head_macs = linear_macs(head.proj) + linear_macs(head.encoder)
        for b in args.batches:
            prompts = [p.prompt for p in heldout_problems(TaskConfig(), b, seed=61_000)]
            r = measure(model, head, prompts, config, args.repeats)
            rows.append((name, sum(p.numel() for p in head.parameters()), head_macs / model_macs, b, r))
            print(name, b, f"{r['ratio']:.3f}", flush=True)
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"
    lines = [
        "# Live step scoring: overhead on generation (embedded model)",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu}; load average {load:.1f} at the start; {time.time() - t_start:.0f} s in all",
        f"- torch {torch.__version__}; model `{args.model or 'embedded'}`: {model_macs:,} multiply-adds per token in its weight matrices",
        f"- command: `python benchmarks/live_scoring.py --batches {','.join(map(str, args.batches))} --repeats {args.repeats} --threads {args.threads} --max-new-tokens {args.max_new_tokens}`",
        f"- work: {args.max_new_tokens} new tokens at temperature 1 per prompt; each repeat runs plain `generate` and `generate_scored` back to back, alternating which goes first, on the same prompts and seed (identical tokens); ratio = live / plain per pair, median over {args.repeats} pairs (range in brackets)",
        "",
        "| head (untrained; cost does not depend on weights) | parameters | head work per token / model's | batch | plain generate (s) | with live scoring (s) | steps scored | overhead ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n_params, frac, b, r in rows:
        lines.append(
            f"| {name} | {n_params:,} | {frac:.0%} | {b} | {r['plain_s']:.3f} | {r['live_s']:.3f} | {r['steps']} | **{r['ratio']:.3f}** ({r['ratio_lo']:.3f}–{r['ratio_hi']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    p.add_argument("--repeats", type=int, default=21, help="back-to-back pairs per measurement (median)")
    p.add_argument("--max-new-tokens", type=int, default=120, help="new tokens per prompt")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--out", default=None, help="write the markdown here (e.g. benchmarks/results/live_scoring.md)")
    args = p.parse_args(argv)
    text = run(args)
    print(text)
    if args.out:
        atomic_write_bytes(Path(args.out), text.encode())
    return text


if __name__ == "__main__":
    main()
