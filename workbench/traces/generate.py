"""Generation with step tracking: batched sampling on the hot path, returning segmented, aligned traces.

Sampling runs Hugging Face ``generate`` on the adapter's unwrapped model (KV cache on; the bridge is slower,
see ``docs/hooks.md``). Prompts are sorted by token length before batching so that a batch pads little,
and put back in order afterwards. Each batch is sampled under its own seed (``seed``, batch number) inside
``torch.random.fork_rng``, so the same prompts, config and seed give identical traces and the caller's
global RNG is left untouched. Samples are reproducible for a fixed ``batch_size``: HF draws the tokens of
a batch from one generator, so a different batch size gives different (equally valid) samples.

Stop strings are passed to HF (it stops a row once a stop string is generated) and the returned text is
cut before the first stop string, as inference servers do. ``top_k`` defaults to 0 (off): HF would
otherwise fill in its global default of 50.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
from jaxtyping import Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench.traces.segment import get_segmenter, segment_trace
from workbench.traces.types import Trace

__all__ = [
    "GenerationConfig",
    "Completion",
    "sample_completions",
    "generate_traces",
    "left_pad",
    "Batch",
    "length_batches",
    "batch_seed",
]


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """Sampling settings; recorded in every generated trace's ``generation`` field."""

    max_new_tokens: int = 128
    """Most tokens to generate per sample."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 1.0
    """Nucleus sampling mass (1.0: off)."""
    top_k: int = 0
    """Keep only the k most likely tokens (0: off)."""
    seed: int = 0
    """Seed of the sampling RNG (per batch: seed and batch number)."""
    stop: tuple[str, ...] = ()
    """Stop strings; the completion is cut before the first one."""
    num_samples: int = 1
    """Samples per prompt."""
    batch_size: int = 32
    """Sequences per ``generate`` call (prompts per call = batch_size // num_samples, at least 1)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}: must be at least 1")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: must be >= 0 (0 is greedy)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p}: must be in (0, 1]")
        for name in ("top_k",):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 0")
        for name in ("num_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if any(not s for s in self.stop):
            raise ValueError(f"stop={list(self.stop)}: stop strings must be non-empty")

    def to_dict(self) -> dict:
        """JSON-ready settings (``stop`` as a list)."""
        return {**asdict(self), "stop": list(self.stop)}

    def hf_kwargs(self) -> dict:
        """Keyword arguments for Hugging Face ``generate``."""
        if self.temperature == 0:
            kw = {"do_sample": False}
        else:
            kw = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k}
        return {**kw, "max_new_tokens": self.max_new_tokens, "num_return_sequences": self.num_samples}


class Completion(NamedTuple):
    """One sampled continuation of one prompt."""

    prompt_index: int
    """Position of the prompt in the input list."""
    sample_index: int
    """Which of the prompt's ``num_samples`` samples."""
    text: str
    """The generated text, cut before the first stop string."""
    n_tokens: int
    """Tokens generated (the end-of-sequence token included when the model emitted it)."""
    finish_reason: str
    """``eos`` (the model ended), ``stop`` (a stop string) or ``length`` (``max_new_tokens`` reached)."""


class Batch(NamedTuple):
    """A left-padded batch of token rows."""

    input_ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> Batch:
    """Left-padded ``input_ids`` and ``attention_mask`` from token lists of different lengths."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return Batch(ids, mask)


class _Finished(NamedTuple):
    text: str
    n_tokens: int
    finish_reason: str


def _finish(tokenizer, row: list[int], stop: tuple[str, ...]) -> _Finished:
    """Text, token count and finish reason of one generated row.

    The row ends at its first end-of-sequence token; padding after a row that HF stopped on a stop string
    is dropped (a pad token the model itself wrote mid-row stays, decoded as text: nothing is hidden).
    """
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    end = row.index(eos) if eos in row else len(row)
    kept = end
    while kept > 0 and row[kept - 1] == pad:
        kept -= 1
    text = tokenizer.decode(row[:kept], skip_special_tokens=False)
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    if cuts:
        return _Finished(text[: min(cuts)], kept, "stop")
    if end < len(row):
        return _Finished(text, end + 1, "eos")
    if kept < end and stop:
        return _Finished(text, kept, "stop")  # HF matched a stop string that overlaps the end of the prompt
    return _Finished(text, kept, "length")


def length_batches(lengths: Sequence[int], per_batch: int) -> list[list[int]]:
    """Indices grouped into batches of ``per_batch``, shortest first (little padding per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + per_batch] for i in range(0, len(order), per_batch)]


def _rng_devices(device: torch.device) -> list:
    """Devices whose RNG ``fork_rng`` must save and restore (the CPU's always is)."""
    return [device] if device.type == "cuda" else []


@contextmanager
def batch_seed(device: torch.device, seed: int, batch_index: int = 0) -> Iterator[None]:
    """Sample batch ``batch_index`` of a run seeded ``seed`` on ``device``: torch's RNG seeded with
    ``seed * 1_000_003 + batch_index`` inside ``torch.random.fork_rng``, so the caller's RNG is untouched.
    Every seeded generate of the workbench goes through this, so the same seed gives the same tokens."""
    with torch.random.fork_rng(devices=_rng_devices(device)):
        torch.manual_seed(seed * 1_000_003 + batch_index)
        yield


def sample_completions(
    model,
    prompts: Sequence[str],
    config: GenerationConfig = GenerationConfig(),
    *,
    progress: bool = True,
    desc="generate",
) -> list[Completion]:
    """``num_samples`` completions per prompt, prompt-major order, batched with the KV cache."""
    tok = model.tokenizer
    ids = tok(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []
    per_call = max(1, config.batch_size // config.num_samples)
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}
    if config.stop:
        kwargs |= {"stop_strings": list(config.stop), "tokenizer": tok}
    out: list[Completion | None] = [None] * (len(ids) * config.num_samples)
    bar = tqdm(total=len(out), desc=desc, disable=not progress, unit="seq")
    for b, chunk in enumerate(length_batches([len(r) for r in ids], per_call)):
        input_ids, mask = left_pad([ids[i] for i in chunk], tok.pad_token_id)
        with batch_seed(model.device, config.seed, b):
            generated = model.generate(input_ids, mask, **kwargs)[:, input_ids.shape[1] :].tolist()
        for r, row in enumerate(generated):
            p, j = chunk[r // config.num_samples], r % config.num_samples
            text, n, reason = _finish(tok, row, config.stop)
            out[p * config.num_samples + j] = Completion(p, j, text, n, reason)
        bar.update(len(generated))
    bar.close()
    return out  # type: ignore[return-value]


def generate_traces(
    model,
    prompts: Sequence[str],
    *,
    config: GenerationConfig = GenerationConfig(),
    problem_ids: Sequence[str] | None = None,
    gold_answers: Sequence[str | None] | None = None,
    segmenter: str | dict = "newline",
    label: Callable[[Trace], Trace] | None = None,
    progress: bool = True,
) -> list[Trace]:
    """Sample completions and return them as segmented, token-aligned traces (optionally labelled).

    ``label`` maps each trace to a labelled trace (e.g. :func:`workbench.labels.checker.label_with_checker`).
    An empty completion gives a trace without steps (and is not labelled), not an error.
    """
    problem_ids = list(problem_ids) if problem_ids is not None else [f"prompt{i}" for i in range(len(prompts))]
    golds = list(gold_answers) if gold_answers is not None else [None] * len(prompts)
    for name, values in (("problem_ids", problem_ids), ("gold_answers", golds)):
        if len(values) != len(prompts):
            raise ValueError(f"{name}: {len(values)} values for {len(prompts)} prompts")
    if len(set(problem_ids)) != len(problem_ids):
        raise ValueError("problem_ids: ids must be unique (trace ids are built from them); use num_samples")
    provenance = model.provenance()
    settings = config.to_dict() | {"source": "workbench.traces.generate"}
    traces = []
    for c in sample_completions(model, prompts, config, progress=progress):
        trace = Trace(
            trace_id=f"{problem_ids[c.prompt_index]}/s{config.seed}.{c.sample_index}",
            problem_id=problem_ids[c.prompt_index],
            prompt=prompts[c.prompt_index],
            completion=c.text,
            gold_answer=golds[c.prompt_index],
            generation=settings | {"sample_index": c.sample_index, "n_tokens": c.n_tokens, "finish": c.finish_reason},
            model=provenance,
        )
        if not c.text.strip():
            traces.append(replace(trace, segmenter=get_segmenter(segmenter).describe()))
            continue
        trace = segment_trace(trace, segmenter, tokenizer=model.tokenizer, n_ctx=model.n_ctx)
        traces.append(label(trace) if label is not None else trace)
    return traces
