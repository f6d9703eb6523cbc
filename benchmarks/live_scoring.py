"""Benchmark: the cost of scoring steps live during generation, against plain ``generate`` in the same run.

    python benchmarks/live_scoring.py [--batches 8,16,32] [--repeats 21] [--threads 1,2] [--model PATH] [--out FILE]

:func:`workbench.heads.live.generate_scored` samples exactly the tokens a plain ``generate`` call samples (same
prompts, seed and settings) while hooks copy the head's features from the generating forwards and a
stopping criterion scores each step once its boundary token has been read. Each round runs plain generate,
live scoring with the head in a scoring process and live scoring with the head in this process back to back
(rotating which goes first); ratios are taken within a round and the median over rounds is reported, so slow
drifts of the machine's load hit all sides alike. The scoring process uses a second core, so the header
also reports what that core would give plain ``generate`` instead (torch with 2 threads).

The head's weights do not change its cost, so heads of several sizes are built untrained: the work per
generated token is then compared with the model's (multiply-adds of the weight matrices each token passes,
embedding look-ups excluded). The overhead of live scoring grows with that ratio; on the embedded model a
head is a sizeable fraction of a 4-layer, 128-wide transformer. Without ``--out`` nothing is written.
"""

# ruff: noqa: E501  (markdown table rows)

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import StoppingCriteriaList

from workbench.heads import HeadConfig, UncertaintyHead
from workbench.heads.live import LiveStepScorer, generate_scored, generate_with_scorer
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
        "last layer, width 64": HeadConfig(hooks=(last,), width=64, n_heads=4),
    }
    torch.manual_seed(0)
    return {name: UncertaintyHead.build(c, c.n_features(model.d_model)).eval() for name, c in cfgs.items()}


def _child_cpu_s(scorer: LiveStepScorer) -> float | None:
    """CPU seconds the scorer's scoring process has used so far (Linux ``/proc``; None elsewhere)."""
    proc = scorer._process
    try:
        fields = Path(f"/proc/{proc.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (AttributeError, OSError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(model, head, prompts, config: GenerationConfig, repeats: int) -> dict:
    """Medians over rounds of (live time / plain generate time), for the head in a scoring process and in
    this process; each round runs the three back to back, in an order that rotates from round to round."""
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

    def live(scorer):
        """What generate_scored times: generate with the scorer attached, every score collected (its text
        decoding and DataFrame, which plain generate has no counterpart of, come after the clock stops)."""
        generate_with_scorer(model, scorer, batch, config)
        return list(scorer.records)

    offload = LiveStepScorer(model, head, offload=True)
    t0 = time.perf_counter()
    with offload.attached(batch.input_ids.shape[1]):  # starts the scoring process
        startup = time.perf_counter() - t0
    plain(), live(offload)  # warm-up
    local = LiveStepScorer(model, head, offload=False)
    runs = {"plain": plain, "offload": lambda: live(offload), "local": lambda: live(local)}
    check = generate_scored(model, head, prompts, config, scorer=local)
    same = pd.DataFrame(live(offload))  # the scoring process gives generate_scored's scores, in its order
    np.testing.assert_allclose(same.head_score, check.steps.head_score, rtol=0, atol=1e-5)
    spent = {k: [] for k in runs}
    names, steps, child_cpu, late = list(runs), 0, [], []
    for i in range(repeats):
        for name in names[i % 3 :] + names[: i % 3]:  # rotate which goes first
            cpu0 = _child_cpu_s(offload)
            t = time.perf_counter()
            res = runs[name]()
            spent[name].append(time.perf_counter() - t)
            if name == "offload":
                res = pd.DataFrame(res)
                steps = len(res)
                late.append(float((res.scored_after_tokens - res.token_end - 1).mean()))
                if cpu0 is not None:
                    child_cpu.append(_child_cpu_s(offload) - cpu0)
    offload.close()
    p = spent["plain"]
    out = {"plain_s": statistics.median(p), "steps": steps, "startup_s": startup}
    for name in ("offload", "local"):
        ratios = [x / y for x, y in zip(spent[name], p, strict=True)]
        out |= {
            f"{name}_s": statistics.median(spent[name]),
            f"{name}_ratio": statistics.median(ratios),
            f"{name}_lo": min(ratios),
            f"{name}_hi": max(ratios),
        }
    out["late_tokens"] = statistics.mean(late)
    out["child_cpu_s"] = statistics.median(child_cpu) if child_cpu else None
    return out


def threads_gain(model, config: GenerationConfig, repeats: int) -> float:
    """Median over alternating pairs of (plain generate time with 2 torch threads / with 1 thread)."""
    tok = model.tokenizer
    prompts = [p.prompt for p in heldout_problems(TaskConfig(), 16, seed=61_000)]
    batch = left_pad(tok(prompts, add_special_tokens=False)["input_ids"], tok.pad_token_id)
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}
    before, ratios = torch.get_num_threads(), []
    for i in range(repeats):
        spent = {}
        for n in (1, 2) if i % 2 == 0 else (2, 1):
            torch.set_num_threads(n)
            with torch.random.fork_rng(devices=rng_devices(model.device)):
                torch.manual_seed(config.seed * 1_000_003)
                t = time.perf_counter()
                model.generate(*batch, **kwargs)
                spent[n] = time.perf_counter() - t
        ratios.append(spent[2] / spent[1])
    torch.set_num_threads(before)
    return statistics.median(ratios)


def run(args) -> str:
    torch.set_num_threads(1)
    t_start = time.time()
    load = os.getloadavg()[0]
    model = load_model(args.model, device="cpu")
    model_macs = linear_macs(model.hf_model.model.layers) + model.hf_model.lm_head.weight.numel()
    config = GenerationConfig(temperature=1.0, max_new_tokens=args.max_new_tokens, seed=4)
    rows = []
    for (name, head), threads in itertools.product(heads_to_measure(model).items(), args.threads):
        torch.set_num_threads(threads)
        head_macs = linear_macs(head.proj) + linear_macs(head.encoder)
        for b in args.batches:
            prompts = [p.prompt for p in heldout_problems(TaskConfig(), b, seed=61_000)]
            r = measure(model, head, prompts, config, args.repeats)
            rows.append((name, sum(p.numel() for p in head.parameters()), head_macs / model_macs, threads, b, r))
            print(name, threads, b, f"{r['offload_ratio']:.3f} {r['local_ratio']:.3f}", flush=True)
    torch.set_num_threads(1)
    two = threads_gain(model, config, args.repeats)
    cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores"
    lines = [
        "# Live step scoring: overhead on generation (embedded model)",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu}; load average {load:.1f} at the start; {time.time() - t_start:.0f} s in all",
        f"- torch {torch.__version__}; model `{args.model or 'embedded'}`: {model_macs:,} multiply-adds per token in its weight matrices",
        f"- the second core for plain generate instead: torch with 2 threads takes {two:.3f}× the 1-thread time (batch 16, median of {args.repeats} alternating pairs)",
        f"- command: `python benchmarks/live_scoring.py --batches {','.join(map(str, args.batches))} --repeats {args.repeats} --threads {','.join(map(str, args.threads))} --max-new-tokens {args.max_new_tokens}`",
        f"- work: {args.max_new_tokens} new tokens at temperature 1 per prompt. Each round runs plain `generate`, `generate` with a `LiveStepScorer` attached with the head in a scoring process (the default when torch's threads leave a CPU free) and the same with the head in this process (what `generate_scored` does, its text decoding left out: plain `generate` decodes nothing either), back to back on the same prompts and seed (identical tokens), rotating which goes first; ratio = live / plain within the round, median over {args.repeats} rounds (range in brackets). Each scorer is made once and reused (`scorer=`), as a monitoring loop would: the scoring process's start-up (column) is paid once per scorer, not per call.",
        "- the scoring process runs the head on another core while the model generates; with torch on 1 thread that core is otherwise idle, with 2 threads the scoring process shares it with torch's second thread (both rows are measured, each against plain generate on the same thread count). Its CPU time per generate call is in the table. `late` = mean tokens between a step being ready and its score being collected (0 in this process by construction). `start-up`: starting the scoring process, once per scorer.",
        "",
        "| head (untrained; cost does not depend on weights) | parameters | head work per token / model's | torch threads | batch | plain generate (s) | steps scored | **scoring process: ratio** | its CPU per call (s) | late (tokens) | start-up (s) | in this process: ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n_params, frac, threads, b, r in rows:
        cpu = "n/a" if r["child_cpu_s"] is None else f"{r['child_cpu_s']:.3f}"
        lines.append(
            f"| {name} | {n_params:,} | {frac:.0%} | {threads} | {b} | {r['plain_s']:.3f} | {r['steps']} | **{r['offload_ratio']:.3f}** ({r['offload_lo']:.3f}–{r['offload_hi']:.3f}) | {cpu} | {r['late_tokens']:.2f} | {r['startup_s']:.2f} | {r['local_ratio']:.3f} ({r['local_lo']:.3f}–{r['local_hi']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    p.add_argument("--repeats", type=int, default=21, help="rounds per measurement (median)")
    p.add_argument("--max-new-tokens", type=int, default=120, help="new tokens per prompt")
    p.add_argument(
        "--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2], help="torch CPU threads to measure"
    )
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
