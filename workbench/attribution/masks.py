"""Eager attention and custom 4-D attention masks on the unwrapped Hugging Face model.

Two facts shape this module (checked on transformers 5.x):

- Only *eager* attention returns attention weights (sdpa and flash never form them), so
  :func:`eager_attention` switches the model's implementation for the block and restores it afterwards.
- A 4-D ``attention_mask`` is used by the model exactly as given, so it must contain the causal part itself;
  eager attention *adds* it to the scores, so it is a float mask: 0 where a query may look, the dtype's
  minimum where it may not (a boolean mask would be added as 0/1). :func:`causal_mask` builds that base,
  identical to the mask the model builds for itself, so a masked forward with nothing suppressed reproduces
  the plain eager forward bit for bit.

:func:`layer_masks` replaces the mask seen by chosen layers only (a forward pre-hook on their attention
module, removed on exit), for suppression restricted to some layers or heads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.capture.record import eager_attention  # one implementation, shared with capture

__all__ = ["eager_attention", "causal_mask", "layer_masks", "attention_modules", "StopForward"]


class StopForward(Exception):
    """Raised by a hook once everything a caller needs is computed (ends the forward early)."""


def causal_mask(
    n_rows: int, n_pos: int, *, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> Float[Tensor, "batch 1 pos pos"]:
    """The additive causal mask: 0 on and below the diagonal, ``finfo(dtype).min`` above it."""
    allowed = torch.ones(n_pos, n_pos, dtype=torch.bool, device=device).tril()
    mask = torch.zeros(n_pos, n_pos, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
    return mask.expand(n_rows, 1, n_pos, n_pos).clone()


def attention_modules(model) -> list[torch.nn.Module]:
    """The attention module of every decoder layer of a :class:`~workbench.models.WorkbenchModel`."""
    layout = model.layout
    return [getattr(layer, layout.attn_attr) for layer in layout.layers]


@contextmanager
def layer_masks(model, masks: Mapping[int, Tensor]) -> Iterator[None]:
    """Inside the block, layer ``i``'s attention sees ``masks[i]`` instead of the mask of the forward call."""
    modules = attention_modules(model)
    with ExitStack() as stack:
        for i, mask in masks.items():

            def swap(module, args, kwargs, mask=mask):
                if "attention_mask" not in kwargs:
                    raise RuntimeError(
                        f"{type(module).__name__} got no attention_mask keyword; per-layer masks need a model "
                        "whose decoder layers pass it by keyword (Qwen2, Llama)"
                    )
                return args, {**kwargs, "attention_mask": mask}

            handle = modules[i].register_forward_pre_hook(swap, with_kwargs=True)
            stack.callback(handle.remove)
        yield
