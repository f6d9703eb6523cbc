"""Benchmark: the cost of scoring steps live during generation, against plain ``generate`` in the same run.

    python benchmarks/live_scoring.py [--batches 8,16,32] [--repeats 16] [--threads 1,2] [--model PATH] [--out FILE]

Live scoring (:func:`workbench.heads.live.generate_with_scorer`, what
:func:`~workbench.heads.live.generate_scored` runs) samples exactly the tokens a plain ``generate`` call samples
(same prompts, seed and settings) while hooks copy the head's features from the generating forwards and a
stopping criterion scores each step once its boundary token has been read. Each round times four calls, each
on its own copy of the model: plain generate, plain generate again (a control whose ratio shows the
measurement's own error), the head in a scoring process, the head in this process. The calls run in threads
that take turns one sampled token at a time (:class:`Turns`), each call's clock running only while it holds the
turn, so the drift of a shared machine's speed hits all four alike; ratios are per round, reported as
geometric means with 95% confidence intervals. The scoring process uses a second core, so the header also
reports what that core would give plain ``generate`` instead (torch with 2 threads).

The head's weights do not change its cost, so heads of several sizes are built untrained: the work per
generated token is then compared with the model's (multiply-adds of the weight matrices each token passes,
embedding look-ups excluded). The overhead of live scoring grows with that ratio; on the embedded model a
head is a sizeable fraction of a 4-layer, 128-wide transformer. Without ``--out`` nothing is written.
"""

# ruff: noqa: E501  (markdown table rows)

from __future__ import annotations

import argparse
import copy
import datetime
import itertools
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats
import torch
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads import HeadConfig, UncertaintyHead
from workbench.heads.live import LiveStepScorer, generate_with_scorer
from workbench.models import load_model
from workbench.toy import TaskConfig
from workbench.toy.evaluate import heldout_problems
from workbench.traces import GenerationConfig
from workbench.traces.generate import batch_seed, left_pad
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


class Turns:
    """Generate calls in threads that take turns one sampled token at a time; each call's clock runs only while
    it holds the turn, and the torch random state is swapped at each hand-over, so every call samples the same
    tokens it would sample alone (checked)."""

    def __init__(self, n: int) -> None:
        self.cv = threading.Condition()
        self.turn, self.done = 0, [False] * n
        self.spent, self.since = [0.0] * n, [0.0] * n
        self.rng: list[torch.Tensor | None] = [None] * n

    def take(self, i: int) -> None:
        with self.cv:
            self.cv.wait_for(lambda: self.turn == i)
        if self.rng[i] is not None:
            torch.set_rng_state(self.rng[i])
        self.since[i] = time.perf_counter()

    def give(self, i: int, final: bool = False) -> None:
        self.spent[i] += time.perf_counter() - self.since[i]
        self.rng[i] = torch.get_rng_state()
        with self.cv:
            self.done[i] |= final
            n = len(self.done)
            waiting = [(i + j) % n for j in range(1, n + 1) if not self.done[(i + j) % n]]
            if waiting:
                self.turn = waiting[0]
            self.cv.notify_all()

    def run(self, calls: list) -> list[float]:
        """Run ``calls`` (each called with a stopping criterion that hands the turn on) in turns; the seconds
        each spent holding the turn."""
        errors: list[BaseException] = []

        def body(i, call):
            self.take(i)
            try:
                call(_HandOn(self, i))
            except BaseException as err:  # re-raised below, after the others finish
                errors.append(err)
            finally:
                self.give(i, final=True)

        threads = [threading.Thread(target=body, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return self.spent


class _HandOn(StoppingCriteria):
    """A stopping criterion that hands the turn to the next call after each sampled token (never stops)."""

    def __init__(self, turns: Turns, i: int) -> None:
        self.turns, self.i = turns, i

    def __call__(self, input_ids, scores=None, **kwargs):
        self.turns.give(self.i)
        self.turns.take(self.i)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _FirstHandOn(StoppingCriteria):
    """The scorer as ``generate_with_scorer`` uses it, handing the turn on before it looks at each token (so the
    scoring process works on a step while its own call goes on, as it does when it runs alone)."""

    def __init__(self, scorer: LiveStepScorer, hand_on: _HandOn) -> None:
        self.scorer, self.hand_on = scorer, hand_on

    def attached(self, *args):
        return self.scorer.attached(*args)

    def __call__(self, input_ids, scores=None, **kwargs):
        self.hand_on(input_ids)
        return self.scorer(input_ids, scores, **kwargs)


def _ci(ratios: list[float]) -> tuple[float, float, float]:
    """Geometric mean of ``ratios`` and its 95% confidence interval (t interval on the logarithms)."""
    logs = np.log(ratios)
    half = scipy.stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / np.sqrt(len(logs))
    return float(np.exp(logs.mean())), float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def measure(model, head, prompts, config: GenerationConfig, repeats: int) -> dict:
    """Overhead of live scoring, measured with the generate calls taking turns token by token (:class:`Turns`):
    plain generate, plain generate again (the control: its ratio shows the measurement's own error), the head in
    a scoring process and the head in this process, each on its own copy of the model, in an order that rotates
    from round to round. Ratios are per round (call time / plain time); reported as geometric means with 95%
    confidence intervals over the rounds.

    With torch on 1 thread, the calls' threads are kept on one CPU (they never run at the same time, and a
    single generate call stays on its core too) and the scoring process may use the others; with more torch
    threads nothing is pinned."""
    tok = model.tokenizer
    batch = left_pad(tok(list(prompts), add_special_tokens=False)["input_ids"], tok.pad_token_id)
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}
    names = ("plain", "control", "offload", "local")
    models = {name: copy.deepcopy(model) for name in names}  # hooks on one copy never fire in another
    offload = LiveStepScorer(models["offload"], head, offload=True)
    local = LiveStepScorer(models["local"], head, offload=False)
    t0 = time.perf_counter()
    with offload.attached(batch.input_ids.shape[1]):  # starts the scoring process
        startup = time.perf_counter() - t0
    outputs: dict[str, torch.Tensor] = {}

    def plain_call(name):
        def call(hand_on):
            with batch_seed(model.device, config.seed):
                criteria = StoppingCriteriaList([hand_on])
                outputs[name] = models[name].generate(*batch, stopping_criteria=criteria, **kwargs)

        return call

    def live_call(name, scorer):
        def call(hand_on):
            outputs[name] = generate_with_scorer(models[name], _FirstHandOn(scorer, hand_on), batch, config)

        return call

    calls = {
        "plain": plain_call("plain"),
        "control": plain_call("control"),
        "offload": live_call("offload", offload),
        "local": live_call("local", local),
    }
    everywhere = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pin = everywhere is not None and len(everywhere) > 1 and torch.get_num_threads() == 1
    spent = {k: [] for k in names}
    steps, child_cpu, late = 0, [], []
    try:
        if pin:
            os.sched_setaffinity(0, {min(everywhere)})  # this thread, and the threads it starts
        for i in range(repeats + 1):  # round 0 warms up
            if pin:
                os.sched_setaffinity(offload._process.proc.pid, everywhere)
            order = [names[(i + j) % len(names)] for j in range(len(names))]
            cpu0 = _child_cpu_s(offload)
            took = Turns(len(order)).run([calls[n] for n in order])
            for name in names[1:]:
                if not torch.equal(outputs[name], outputs["plain"]):
                    raise RuntimeError(f"{name} sampled different tokens than plain generate")
            res = pd.DataFrame(offload.records)
            np.testing.assert_allclose(res.head_score, pd.DataFrame(local.records).head_score, rtol=0, atol=1e-5)
            if i == 0:
                continue
            for name, t in zip(order, took, strict=True):
                spent[name].append(t)
            steps = len(res)
            late.append(float((res.scored_after_tokens - res.token_end - 1).mean()))
            if cpu0 is not None:
                child_cpu.append(_child_cpu_s(offload) - cpu0)
    finally:
        if pin:
            os.sched_setaffinity(0, everywhere)
        offload.close()
    p = spent["plain"]
    out = {"plain_s": statistics.median(p), "steps": steps, "startup_s": startup, "rounds": repeats, "pinned": pin}
    for name in names[1:]:
        ratio, lo, hi = _ci([x / y for x, y in zip(spent[name], p, strict=True)])
        out |= {f"{name}_s": statistics.median(spent[name]), f"{name}_ratio": ratio, f"{name}_lo": lo, f"{name}_hi": hi}
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
            with batch_seed(model.device, config.seed):
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
        f"- work: {args.max_new_tokens} new tokens at temperature 1 per prompt, the same prompts and seed for every call (identical tokens, checked each round). Four calls per round, each on its own copy of the model: plain `generate`; plain `generate` again (**control**: its ratio to the first shows the measurement's own error); `generate` with a `LiveStepScorer` attached with the head in a scoring process (the default when torch's threads leave a CPU free); the same with the head in this process. The scores of the two placements are checked equal each round.",
        "- how it is timed: the four calls run in threads that **take turns one sampled token at a time** (`Turns`), each call's clock running only while it holds the turn, with torch's random state swapped at each hand-over. On this shared 2-core VM the machine's speed drifts by ±10% between whole calls half a second apart, which buried a few-percent overhead in noise when whole calls were timed back to back (the previous method); token-by-token turns put every call under the same drift. The live calls hand the turn on before their scorer looks at the token, so the scoring process works on a step while its own call goes on, as it does when the call runs alone. With torch on 1 thread the calls' threads are kept on one CPU (a single generate call stays on its core; unpinned, the turn-taking threads would wake on the scoring process's core) and the scoring process may run on any; with 2 threads nothing is pinned.",
        f"- ratio = call time / plain time within a round; geometric mean over {args.repeats} rounds (after one warm-up round) with its 95% confidence interval in brackets. Each scorer is made once and reused (`scorer=`), as a monitoring loop would: the scoring process's start-up (column) is paid once per scorer, not per call. Its CPU time per generate call is in the table. `late` = mean tokens between a step being ready and its score being collected (0 in this process by construction).",
        "",
        "| head (untrained; cost does not depend on weights) | parameters | head work per token / model's | torch threads | batch | plain generate (s) | steps scored | control (plain again): ratio | **scoring process: ratio** | its CPU per call (s) | late (tokens) | start-up (s) | in this process: ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n_params, frac, threads, b, r in rows:
        cpu = "n/a" if r["child_cpu_s"] is None else f"{r['child_cpu_s']:.3f}"
        lines.append(
            f"| {name} | {n_params:,} | {frac:.0%} | {threads} | {b} | {r['plain_s']:.3f} | {r['steps']} | {r['control_ratio']:.3f} ({r['control_lo']:.3f}–{r['control_hi']:.3f}) | **{r['offload_ratio']:.3f}** ({r['offload_lo']:.3f}–{r['offload_hi']:.3f}) | {cpu} | {r['late_tokens']:.2f} | {r['startup_s']:.2f} | {r['local_ratio']:.3f} ({r['local_lo']:.3f}–{r['local_hi']:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[8, 16, 32])
    p.add_argument("--repeats", type=int, default=16, help="timed rounds per measurement (geometric mean, 95%% CI)")
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
