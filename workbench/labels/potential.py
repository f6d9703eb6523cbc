"""SPAE's forced-answer step potential: how sure and how right the model would be if it answered now.

After each step (prompt + completion through the step's delimiter) append the task's answer cue
(:class:`~workbench.labels.answers.AnswerFormat`, ``ans=`` for the toy task) and read:

- ``Acc`` = the teacher-forced probability of the gold answer tokens (plus the answer terminator, so that
  ``3`` is not credited for ``35``) — one forced forward pass per prefix, the faithful and cheap way;
- ``Conf`` = exp(−mean token entropy) of the model's answer distribution over a few short sampled answers
  (entropy of the full next-token distribution at every sampled position, up to the terminator);
- ``Φ = 1.5·Acc·Conf + 0.5·Acc − Conf`` ∈ [−1, 1]: high when right and sure, lowest when sure and wrong.
  A step is *saturated* when Φ > 0.9 (SPAE stops checking there).

The answer tokens are the tokenisation of ``gold + terminator`` appended to the tokens of ``prefix + cue``
(teacher forcing of the answer as the tokenizer spells it alone). Batches are left-padded with explicit
position ids, and only the logits that score the answer are computed (``logits_to_keep``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from workbench.labels.answers import TOY_ANSWER, AnswerFormat
from workbench.labels.rollouts import step_prefixes
from workbench.labels.table import StepKey, StepLabels, unique_traces
from workbench.traces.generate import batch_seed, left_pad, length_batches
from workbench.traces.types import Trace

__all__ = ["PotentialConfig", "step_potential", "forced_answer_labels", "answer_logprob", "answer_entropy"]


@dataclass(frozen=True, kw_only=True)
class PotentialConfig:
    """Settings of the forced-answer read-out."""

    answer: AnswerFormat = TOY_ANSWER
    """The answer cue appended after each step, and the terminator scored after the gold answer."""
    n_samples: int = 4
    """Short answers sampled per prefix for ``Conf``."""
    max_answer_tokens: int = 6
    """Length limit of the sampled answers (tokens)."""
    temperature: float = 1.0
    """Sampling temperature of those answers (entropies are always of the untempered distribution)."""
    seed: int = 0
    """Seed of the answer sampling (per batch: seed and batch number)."""
    batch_size: int = 64
    """Prefixes per forward pass (the Conf sampling runs ``batch_size * n_samples`` rows)."""
    saturation: float = 0.9
    """Φ above this marks a saturated step."""

    def __post_init__(self) -> None:
        for name in ("n_samples", "max_answer_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature={self.temperature}: Conf needs sampling, use a temperature > 0")


def step_potential(acc: Float[Tensor, " step"], conf: Float[Tensor, " step"]) -> Float[Tensor, " step"]:
    """SPAE's Φ = 1.5·Acc·Conf + 0.5·Acc − Conf (works on floats too)."""
    return 1.5 * acc * conf + 0.5 * acc - conf


@torch.inference_mode()
def answer_logprob(
    model, contexts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]]
) -> Float[Tensor, " batch"]:
    """log p(answer tokens | context tokens) per row, in one left-padded forward pass."""
    rows = [list(c) + list(a) for c, a in zip(contexts, answers, strict=True)]
    ids, mask = left_pad(rows, model.tokenizer.pad_token_id)
    keep = max(map(len, answers)) + 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    dev = model.device
    logits: Float[Tensor, "batch keep vocab"] = model.hf_model(
        input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev), logits_to_keep=keep
    ).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)  # column j predicts token at -(keep - 1) + j
    targets: Int[Tensor, "batch keep_minus_1"] = ids[:, -(keep - 1) :].to(dev)
    token_logp = logp.gather(-1, targets[..., None])[..., 0]  # batch keep-1
    lengths = torch.tensor([len(a) for a in answers], device=dev)
    cols = torch.arange(keep - 1, device=dev)
    scored = cols[None, :] >= (keep - 1 - lengths)[:, None]  # the last len(answer) columns of each row
    return (token_logp * scored).sum(-1).cpu()


def _valid_positions(tokenizer, rows: list[list[int]], terminator: str) -> Float[Tensor, "batch new"]:
    """1 where a sampled answer token was really generated (up to the terminator or end of sequence)."""
    ends = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    valid = torch.zeros(len(rows), len(rows[0]) if rows else 0)
    for r, row in enumerate(rows):
        for t, tok in enumerate(row):
            valid[r, t] = 1.0
            if tok in ends or terminator in tokenizer.decode(row[: t + 1], skip_special_tokens=False):
                break
    return valid


@torch.inference_mode()
def answer_entropy(
    model, contexts: Sequence[Sequence[int]], config: PotentialConfig, batch_index: int = 0
) -> Float[Tensor, " batch"]:
    """Mean token entropy (nats) of ``n_samples`` short sampled answers per context."""
    tok = model.tokenizer
    ids, mask = left_pad(contexts, tok.pad_token_id)
    kwargs = {
        "do_sample": True,
        "temperature": config.temperature,
        "top_k": 0,
        "top_p": 1.0,
        "max_new_tokens": config.max_answer_tokens,
        "num_return_sequences": config.n_samples,
        "stop_strings": [config.answer.terminator],
        "tokenizer": tok,
        "eos_token_id": tok.eos_token_id,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    with batch_seed(model.device, config.seed, batch_index):
        out = model.generate(ids, mask, **kwargs)
    logits: Float[Tensor, "row new vocab"] = torch.stack(out.logits, dim=1).float()
    entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1).cpu()  # row new
    valid = _valid_positions(tok, out.sequences[:, ids.shape[1] :].tolist(), config.answer.terminator)
    per_row = (entropy * valid).sum(-1) / valid.sum(-1).clamp(min=1)
    return per_row.view(len(contexts), config.n_samples).mean(-1)


def forced_answer_labels(
    model, traces: Sequence[Trace], config: PotentialConfig = PotentialConfig(), *, progress: bool = True
) -> StepLabels:
    """``spae_acc``, ``spae_conf``, ``spae_phi``, ``spae_saturated`` for every step (traces need ``gold_answer``)."""
    tok = model.tokenizer
    keys, contexts, answers = [], [], []
    for t in unique_traces(traces):
        if t.gold_answer is None:
            raise ValueError(f"Trace {t.trace_id}: gold_answer is None; the forced-answer potential needs it")
        gold = tok(t.gold_answer + config.answer.terminator, add_special_tokens=False)["input_ids"]
        for step, prefix in zip(t.steps, step_prefixes(t), strict=True):
            keys.append(StepKey(t.trace_id, step.index))
            contexts.append(tok(prefix + config.answer.cue, add_special_tokens=False)["input_ids"])
            answers.append(gold)
    acc = torch.zeros(len(keys), dtype=torch.float64)
    entropy = torch.zeros(len(keys), dtype=torch.float64)
    batches = length_batches([len(c) for c in contexts], config.batch_size)
    for b, idx in enumerate(tqdm(batches, desc="forced answers", disable=not progress)):
        acc[idx] = answer_logprob(model, [contexts[i] for i in idx], [answers[i] for i in idx]).exp().double()
        entropy[idx] = answer_entropy(model, [contexts[i] for i in idx], config, batch_index=b).double()
    conf = torch.exp(-entropy)
    phi = step_potential(acc, conf)
    return {
        key: {
            "spae_acc": float(a),
            "spae_conf": float(c),
            "spae_phi": float(p),
            "spae_saturated": bool(p > config.saturation),
        }
        for key, a, c, p in zip(keys, acc.tolist(), conf.tolist(), phi.tolist(), strict=True)
    }
