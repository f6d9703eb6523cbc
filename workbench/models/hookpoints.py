"""Hook points of the hot path: TransformerLens hook names mapped onto plain PyTorch module hooks.

Researchers name activations the TransformerLens way (``blocks.3.hook_resid_post``). The bridge gives
every such name, but it roughly halves forward throughput (``shared/docs/stack-notes.md``), so capture,
generation and steering run the unwrapped Hugging Face model and attach ``torch`` hooks to its decoder
layers. This module knows, for Qwen2/Llama/GPT-2-style models, which module and which side (input or
output) each supported name corresponds to. Names outside :data:`HOT_PATH_HOOKS` need the bridge.

All attachment is scoped: :func:`attach` is a context manager and removes every handle on exit, even
when the forward pass raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

__all__ = [
    "HOT_PATH_HOOKS",
    "HookFn",
    "HookPoint",
    "HookSite",
    "ModelLayout",
    "find_layout",
    "hot_path_names",
    "attach",
    "UnknownHookError",
    "parse_layer",
]

#: Per-layer hook suffixes the hot path supports, in residual-stream order.
HOT_PATH_HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_resid_mid", "hook_mlp_out", "hook_resid_post")
_GLOBAL_HOOKS = ("hook_embed", "ln_final.hook_normalized")
_NAME = re.compile(r"^blocks\.(\d+)\.(hook_[a-z_]+)$")


@dataclass(frozen=True)
class HookPoint:
    """What a hook function receives as its second argument, like TransformerLens's ``HookPoint``.

    ``hook.name`` is the TransformerLens hook name (``blocks.3.hook_resid_post``); ``hook.layer()`` its
    block index. It is a plain description of the site: the hot path attaches ``torch`` hooks itself.
    """

    name: str

    def layer(self) -> int:
        """The block index of a ``blocks.{i}.…`` name; raises for names outside a block, as TransformerLens does."""
        layer = parse_layer(self.name)
        if layer is None:
            raise ValueError(f"{self.name!r} is not inside a block, so it has no layer")
        return layer


#: A hook function is called as ``fn(activation, hook)`` (TransformerLens's convention): the activation is
#: ``[batch, pos, d_model]`` and ``hook`` a :class:`HookPoint` (``hook.name``). Returning a tensor replaces
#: the activation (steering); returning None leaves it alone (reading).
HookFn = Callable[[torch.Tensor, HookPoint], "torch.Tensor | None"]


class UnknownHookError(KeyError):
    """A hook name the model does not have; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class ModelLayout:
    """Where the parts of a decoder-only Hugging Face model live."""

    layers: nn.ModuleList
    embed: nn.Module
    final_norm: nn.Module | None
    attn_attr: str
    post_attn_norm_attr: str


@dataclass(frozen=True)
class HookSite:
    """One hook name resolved to a module and the side of it the activation lives on."""

    name: str
    module: nn.Module
    side: str  # "input" or "output"
    writable: bool


def find_layout(model: nn.Module, n_layers: int) -> ModelLayout:
    """Locate decoder layers, embedding and final norm of Qwen2/Llama/GPT-2-style models."""
    layers = next((m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers), None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: found no ModuleList of {n_layers} decoder layers")
    children = dict(layers[0].named_children())
    attn = next((n for n in ("self_attn", "attn", "attention") if n in children), None)
    norm2 = next((n for n in ("post_attention_layernorm", "ln_2") if n in children), None)
    if attn is None or norm2 is None or "mlp" not in children:
        raise ValueError(
            f"{type(layers[0]).__name__}: unsupported decoder layer (children {list(children)}); "
            "use the bridge for this architecture"
        )
    base = getattr(model, "base_model", model)
    final = next((getattr(base, n) for n in ("norm", "ln_f", "final_layernorm") if hasattr(base, n)), None)
    return ModelLayout(
        layers=layers, embed=model.get_input_embeddings(), final_norm=final, attn_attr=attn, post_attn_norm_attr=norm2
    )


def hot_path_names(n_layers: int) -> list[str]:
    """Every hook name the hot path supports for a model of ``n_layers`` layers."""
    names = ["hook_embed"]
    names += [f"blocks.{i}.{h}" for i in range(n_layers) for h in HOT_PATH_HOOKS]
    return names + ["ln_final.hook_normalized"]


def parse_layer(name: str) -> int | None:
    """The layer index in a ``blocks.{i}.…`` hook name, else None."""
    m = re.match(r"^blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def resolve_site(layout: ModelLayout, name: str) -> HookSite:
    """Map a TransformerLens hook name to a module hook; unknown names list the valid ones."""
    n_layers = len(layout.layers)
    if name == "hook_embed":
        return HookSite(name, layout.embed, "output", True)
    if name == "ln_final.hook_normalized" and layout.final_norm is not None:
        return HookSite(name, layout.final_norm, "output", True)
    m = _NAME.match(name)
    if m and int(m.group(1)) < n_layers and m.group(2) in HOT_PATH_HOOKS:
        layer = layout.layers[int(m.group(1))]
        kind = m.group(2)
        if kind == "hook_resid_pre":
            return HookSite(name, layer, "input", True)
        if kind == "hook_resid_post":
            return HookSite(name, layer, "output", True)
        if kind == "hook_attn_out":
            return HookSite(name, getattr(layer, layout.attn_attr), "output", True)
        if kind == "hook_mlp_out":
            return HookSite(name, layer.mlp, "output", True)
        # resid_mid is the input of the post-attention norm: readable, but editing it would not
        # change the residual stream itself, so the hot path refuses writes there.
        return HookSite(name, getattr(layer, layout.post_attn_norm_attr), "input", False)
    valid = hot_path_names(n_layers)
    raise UnknownHookError(
        f"hook {name!r} is not available on the hot path of this {n_layers}-layer model. Valid names: "
        f"{valid[0]}, blocks.{{0..{n_layers - 1}}}.{{{','.join(HOT_PATH_HOOKS)}}}, {valid[-1]}. "
        "Other TransformerLens names (attention patterns, q/k/v) are available through model.bridge"
    )


def _first(x):
    return x[0] if isinstance(x, tuple) else x


def _replace_first(x, new):
    return (new, *x[1:]) if isinstance(x, tuple) else new


def _checked(fn: HookFn, hook: HookPoint) -> Callable[[torch.Tensor], torch.Tensor | None]:
    """Wrap ``fn`` so a hook that returns anything but a tensor or None fails loudly, not silently."""

    def call(t: torch.Tensor):
        new = fn(t, hook)
        if new is not None and not isinstance(new, torch.Tensor):
            raise TypeError(
                f"hook function for {hook.name!r} returned {type(new).__name__}; return a tensor of shape "
                f"{tuple(t.shape)} to replace the activation, or None to leave it"
            )
        return new

    return call


def _make_handle(site: HookSite, fn: HookFn):
    fn = _checked(fn, HookPoint(site.name))
    if site.side == "output":

        def out_hook(module, args, output):
            new = fn(_first(output))
            if new is None:
                return None
            return _replace_first(output, new)

        return site.module.register_forward_hook(out_hook)

    def in_hook(module, args, kwargs):
        if args:
            new = fn(args[0])
            if new is None:
                return None
            if not site.writable:
                raise RuntimeError(f"{site.name} is read-only on the hot path; edit hook_resid_pre/post instead")
            return (new, *args[1:]), kwargs
        new = fn(kwargs["hidden_states"])
        if new is None:
            return None
        if not site.writable:
            raise RuntimeError(f"{site.name} is read-only on the hot path; edit hook_resid_pre/post instead")
        return args, {**kwargs, "hidden_states": new}

    return site.module.register_forward_pre_hook(in_hook, with_kwargs=True)


@contextmanager
def attach(layout: ModelLayout, hooks: Sequence[tuple[str, HookFn]]) -> Iterator[None]:
    """Attach ``(name, fn)`` hooks for the duration of the block; all are removed on exit, errors included."""
    sites = [(resolve_site(layout, name), fn) for name, fn in hooks]  # validate all before attaching any
    handles = []
    try:
        for site, fn in sites:
            handles.append(_make_handle(site, fn))
        yield
    finally:
        for h in handles:
            h.remove()
