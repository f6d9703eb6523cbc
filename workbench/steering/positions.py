"""Which token positions an intervention edits, decided live from the tokens the model is reading.

:class:`Positions` names the rule: every token (``"all"``), only step-boundary tokens (``"boundary"``), or
every token from a given one on (``"from"``). :class:`TokenTracker` follows the token stream of the hot
path (one forward pre-hook on the unwrapped model reads ``input_ids``, the attention mask and the KV
cache's length) and turns a rule into a ``[batch, pos]`` mask for the forward pass in flight.

Boundary tokens are found with the trace's segmenter, causally: after each token, the segmenter is run on
the text since the row's last boundary plus a sentinel character; the token is a boundary when a step ends
exactly after it. For the toy task (``newline``) that is the newline token that ends each line, the same
token capture's ``boundary`` pooling reads. The verdict depends only on the tokens so far, so a KV-cached
generation (prompt first, then one token per call) and one forward pass over the same tokens get the same
masks. Limits of a live view: a step that ends in a run of delimiters (``n=1\n\n`` under ``newline``)
ends live at the first newline, where the offline segmenter puts it at the last; the end of the text is
not a boundary unless a delimiter ends it; a cut made *before* a word (the ``marker`` segmenter's "Wait", the
sentence segmenter's connectors) is only known one token later and is not detected; beam search (which
reorders rows) is not supported. To keep generation fast, the segmenter runs only after tokens that could
end a step: for the segmenters that cut after whitespace (``newline``, ``double_newline``, ``sentence``,
``spae``) tokens containing whitespace, for any other segmenter tokens containing a non-alphanumeric
character.

Positions count *real* tokens of a row (left padding excluded): ``start=0`` is the row's first token.
``generated_only`` restricts a rule to the tokens fed after the first forward call of a generation (the
prompt is read in that first call), for prompts that contain boundaries themselves (chat templates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from workbench.steering.vectors import SteeringError
from workbench.traces.segment import get_segmenter

__all__ = ["Positions", "TokenTracker", "POSITION_KINDS"]

POSITION_KINDS = ("all", "boundary", "from")
_SENTINEL = "X"
_CUT_AFTER_WHITESPACE = frozenset({"newline", "double_newline", "sentence", "spae"})


@dataclass(frozen=True, kw_only=True)
class Positions:
    """The token positions an intervention edits."""

    kind: str = "boundary"
    """``all`` (every token), ``boundary`` (tokens that end a step) or ``from`` (every token from ``start`` on)."""
    start: int = 0
    """First real token (0-based, left padding excluded) that may be edited; ``from`` needs it."""
    segmenter: str = "newline"
    """Segmenter that finds step boundaries (``boundary`` only); the toy task uses ``newline``."""
    generated_only: bool = False
    """Edit only tokens fed after the first forward call of a generation (not the prompt)."""

    def __post_init__(self) -> None:
        if self.kind not in POSITION_KINDS:
            raise SteeringError(f"positions.kind={self.kind!r}: choose one of {POSITION_KINDS}")
        if self.start < 0:
            raise SteeringError(f"positions.start={self.start}: must be >= 0")
        if self.kind == "from" and self.start == 0:
            raise SteeringError("positions.kind='from' needs start > 0 (start=0 is kind='all')")
        get_segmenter(self.segmenter)  # unknown names fail here, listing the valid ones

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "start": self.start,
            "segmenter": self.segmenter,
            "generated_only": self.generated_only,
        }


@dataclass
class _Forward:
    """Facts about the forward pass in flight."""

    ids: list[list[int]]
    real: Tensor  # [batch, pos] bool
    index: Tensor  # [batch, pos] real-token index of each position
    fresh: bool  # first call of a sequence (nothing in the KV cache)
    device: torch.device
    boundary: dict[str, Tensor] = field(default_factory=dict)  # segmenter -> [batch, pos] bool
    masks: dict[Positions, Tensor | None] = field(default_factory=dict)


class TokenTracker:
    """Follows the tokens of every hot-path forward pass and answers "which positions does a rule edit"."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._texts: dict[int, str] = {}
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self._tails: dict[str, list[str]] = {}
        self._segmenters: dict[str, object] = {}
        self._triggers: dict[str, dict[int, bool]] = {}
        self._count: Tensor | None = None  # real tokens seen so far per row (cached generation)
        self.current: _Forward | None = None

    # ---- the pre-hook on the unwrapped model -------------------------------------------------------
    def pre_hook(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise SteeringError("steering needs input_ids (inputs_embeds-only calls carry no tokens to track)")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = int(cache.get_seq_length()) if cache is not None and hasattr(cache, "get_seq_length") else 0
        mask = kwargs.get("attention_mask")
        b, p = ids.shape
        fresh = past == 0
        if isinstance(mask, Tensor) and mask.ndim == 2:
            cur = mask[:, -p:].to(torch.long)
            real = cur.bool()
            if fresh or self._count is None or self._count.shape[0] != b:
                before = mask[:, :-p].to(torch.long).sum(-1) if mask.shape[1] > p else torch.zeros_like(cur[:, 0])
            else:  # cached generation: count incrementally instead of a cumsum over the whole mask
                before = self._count
            index = before[:, None] + cur.cumsum(-1) - 1
            self._count = before + cur.sum(-1)
        else:  # no 2-D mask: every token is real, counted from the cache's length
            real = torch.ones(b, p, dtype=torch.bool, device=ids.device)
            index = (torch.arange(p, device=ids.device) + past).expand(b, p)
        if fresh:
            self._tails = {}
        self.current = _Forward(ids.tolist(), real, index, fresh, ids.device)

    # ---- masks -------------------------------------------------------------------------------------
    def mask(self, positions: Positions) -> Tensor | None:
        """``[batch, pos]`` bool mask of the edited positions in the current forward (None: nothing to edit)."""
        fw = self.current
        if fw is None:
            raise SteeringError("an intervention hook ran outside a tracked forward pass of the steered model")
        if positions not in fw.masks:
            m = fw.real & (fw.index >= positions.start)
            if positions.generated_only and fw.fresh:
                m = torch.zeros_like(m)
            if positions.kind == "boundary":
                m = m & self._boundaries(fw, positions.segmenter)
            fw.masks[positions] = m if bool(m.any()) else None
        return fw.masks[positions]

    def _text(self, token: int) -> str:
        if token not in self._texts:
            special = token in self._special
            self._texts[token] = "" if special else self.tokenizer.decode([token], skip_special_tokens=False)
        return self._texts[token]

    def _boundaries(self, fw: _Forward, segmenter: str) -> Tensor:
        """Boundary flags of the current tokens, updating each row's text since its last boundary."""
        if segmenter in fw.boundary:
            return fw.boundary[segmenter]
        seg = self._segmenters.setdefault(segmenter, get_segmenter(segmenter))
        trig = self._triggers.setdefault(segmenter, {})
        whitespace = segmenter in _CUT_AFTER_WHITESPACE
        tails = self._tails.get(segmenter)
        if tails is None or len(tails) != len(fw.ids):
            tails = self._tails[segmenter] = [""] * len(fw.ids)
        real = fw.real.tolist()
        flags = [[False] * len(row) for row in fw.ids]
        for r, row in enumerate(fw.ids):
            tail = tails[r]
            for j, tok in enumerate(row):
                if not real[r][j]:
                    continue
                t = self._text(tok)
                tail += t
                if tok not in trig:
                    trig[tok] = any(c.isspace() for c in t) if whitespace else bool(t) and not t.isalnum()
                if trig[tok] and self._ends_step(seg, tail):
                    flags[r][j] = True
                    tail = ""
            tails[r] = tail
        out = torch.tensor(flags, dtype=torch.bool, device=fw.device)
        fw.boundary[segmenter] = out
        return out

    @staticmethod
    def _ends_step(seg, text: str) -> bool:
        """True when ``seg`` ends a step exactly at the end of ``text`` (a sentinel shows what follows)."""
        return any(end == len(text) for _, end in seg.split(text + _SENTINEL))
