"""Step judges: a callable protocol that scores steps, a local-model judge, and the toy checker as a judge.

A judge receives a batch of :class:`JudgeRequest` (the problem, the steps before, the step to judge, the
gold answer when known) and returns one :class:`JudgeVerdict` per request: a score in [0, 1] (probability
that the step is correct) and a boolean label. Anything with that call signature is a :class:`StepJudge`
— an LLM behind an API could be one, but the workbench itself never touches the network.

:class:`LocalModelJudge` asks a local causal LM a yes/no question through a prompt template and reads the
next-token probabilities of the two answer words (one forward pass per batch; score = p(yes) / (p(yes) +
p(no)), as in generative PRMs). When the words share leading tokens (a space, with a character tokenizer)
those are appended to the prompt and the first differing token is read. :class:`CheckerJudge` answers with
the toy checker (ground truth) and is what a judge is compared against on the embedded model.
:func:`judge_labels` runs any judge over traces and returns the usual per-step label table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.labels.table import StepKey, StepLabels, unique_traces
from workbench.toy.checker import check_trace, parse_prompt
from workbench.traces.generate import left_pad, length_batches
from workbench.traces.types import Trace

__all__ = [
    "JudgeRequest",
    "JudgeVerdict",
    "StepJudge",
    "LocalModelJudge",
    "CheckerJudge",
    "judge_requests",
    "judge_labels",
    "DEFAULT_TEMPLATE",
]

DEFAULT_TEMPLATE = (
    "Problem:\n{problem}\n\nSolution so far:\n{previous}\n\nNext step:\n{step}\n\n"
    "Is the next step correct? Answer yes or no:"
)


class JudgeRequest(NamedTuple):
    """One step to judge, with its context."""

    trace_id: str
    step_index: int
    problem: str
    """The trace's prompt."""
    previous: tuple[str, ...]
    """Texts of the steps before."""
    step: str
    """Text of the step to judge."""
    gold_answer: str | None
    """The reference answer, when known."""


class JudgeVerdict(NamedTuple):
    """A judge's answer on one step."""

    score: float
    """Probability (or confidence) that the step is correct, in [0, 1]."""
    correct: bool
    """The judge's decision."""


class VerdictTokens(NamedTuple):
    """Where the judge reads its verdict: tokens both answer words start with, then the two that differ."""

    common: list[int]
    yes: int
    no: int


@runtime_checkable
class StepJudge(Protocol):
    """Anything that maps a batch of requests to one verdict each."""

    def __call__(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]: ...


def judge_requests(traces: Sequence[Trace]) -> list[JudgeRequest]:
    """One request per step of ``traces``."""
    out = []
    for t in traces:
        texts = [s.text for s in t.steps]
        for s in t.steps:
            out.append(JudgeRequest(t.trace_id, s.index, t.prompt, tuple(texts[: s.index]), s.text, t.gold_answer))
    return out


def judge_labels(traces: Sequence[Trace], judge: StepJudge, *, name: str = "judge") -> StepLabels:
    """``<name>_score`` and ``<name>_correct`` for every step, from any :class:`StepJudge`."""
    requests = judge_requests(unique_traces(traces))
    verdicts = judge(requests)
    if len(verdicts) != len(requests):
        raise ValueError(f"judge: returned {len(verdicts)} verdicts for {len(requests)} requests")
    return {
        StepKey(r.trace_id, r.step_index): {f"{name}_score": float(v.score), f"{name}_correct": bool(v.correct)}
        for r, v in zip(requests, verdicts, strict=True)
    }


@dataclass(frozen=True, kw_only=True, eq=False)
class LocalModelJudge:
    """A local causal LM asked "is the next step correct? yes/no"; score = p(yes) / (p(yes) + p(no))."""

    model: object
    """A :class:`~workbench.models.WorkbenchModel`."""
    template: str = DEFAULT_TEMPLATE
    """Prompt with ``{problem}``, ``{previous}``, ``{step}`` and optionally ``{gold_answer}``."""
    yes: str = " yes"
    """The answer word meaning correct (read at the first token where it differs from ``no``)."""
    no: str = " no"
    """The answer word meaning wrong."""
    threshold: float = 0.5
    """Score above which the step is judged correct."""
    batch_size: int = 16
    """Prompts per forward pass."""

    def __post_init__(self) -> None:
        self.verdict_tokens()

    def verdict_tokens(self) -> VerdictTokens:
        """Tokens the two answer words share at the start, then the first token where they differ (yes, no)."""
        tok = self.model.tokenizer
        yes, no = (tok(w, add_special_tokens=False)["input_ids"] for w in (self.yes, self.no))
        common = 0
        while common < min(len(yes), len(no)) and yes[common] == no[common]:
            common += 1
        if common == min(len(yes), len(no)):
            raise ValueError(f"yes={self.yes!r}, no={self.no!r}: one tokenizes as a prefix of the other")
        return VerdictTokens(yes[:common], yes[common], no[common])

    def prompt(self, r: JudgeRequest) -> str:
        """The judge prompt of one request."""
        previous = "\n".join(r.previous) if r.previous else "(none)"
        return self.template.format(problem=r.problem, previous=previous, step=r.step, gold_answer=r.gold_answer)

    @torch.inference_mode()
    def next_token_logprobs(self, prompts: Sequence[str]) -> Float[Tensor, "batch vocab"]:
        """Log-probabilities of the token after each prompt (left-padded, position ids from the mask)."""
        tok, dev = self.model.tokenizer, self.model.device
        ids, mask = left_pad(tok(list(prompts), add_special_tokens=False)["input_ids"], tok.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model.hf_model(
            input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=positions.to(dev), logits_to_keep=1
        ).logits[:, -1]
        return torch.log_softmax(logits.float(), -1).cpu()

    def __call__(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        common, yes, no = self.verdict_tokens()
        shared = self.model.tokenizer.decode(common)  # e.g. the space both " yes" and " no" start with
        prompts = [self.prompt(r) + shared for r in requests]
        scores = torch.zeros(len(prompts))
        lengths = [len(p) for p in prompts]
        for idx in length_batches(lengths, self.batch_size):
            logp = self.next_token_logprobs([prompts[i] for i in idx])
            scores[idx] = torch.softmax(logp[:, [yes, no]], -1)[:, 0]  # p(yes) / (p(yes) + p(no))
        return [JudgeVerdict(float(s), bool(s > self.threshold)) for s in scores.tolist()]


class CheckerJudge:
    """The toy checker behind the judge protocol: score 1.0 for a correct step, 0.0 otherwise."""

    def __call__(self, requests: Sequence[JudgeRequest]) -> list[JudgeVerdict]:
        out = []
        for r in requests:
            verdict = check_trace(parse_prompt(r.problem), "\n".join([*r.previous, r.step]) + "\n")
            ok = verdict.steps[-1].correct if verdict.steps else False
            out.append(JudgeVerdict(float(ok), ok))
        return out
