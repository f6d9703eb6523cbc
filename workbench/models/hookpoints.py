"""Hook points of the hot path: TransformerLens hook names mapped onto plain PyTorch module hooks.

Researchers name activations the TransformerLens way (``blocks.3.hook_resid_post``). The bridge gives
every such name, but it roughly halves forward throughput (``docs/hooks.md``), so capture,
generation and steering run the unwrapped Hugging Face model and attach ``torch`` hooks to its decoder
layers. This module knows which module and which side (input or output) each supported name corresponds
to. Names outside :data:`HOT_PATH_HOOKS` need the bridge.

Every name means what TransformerLens means by it, whatever the family's norm placement
(:func:`find_layout` reads it from the decoder layer's children):

- pre-norm (Llama, Qwen2/3, Mistral, GPT-2): ``hook_attn_out``/``hook_mlp_out`` are the attention and MLP
  outputs, ``hook_resid_mid`` the input of the pre-MLP norm;
- sandwich (Gemma2/3, norms before *and after* attention and MLP): ``hook_attn_out``/``hook_mlp_out`` are
  the outputs of the post-attention/post-feedforward norms, i.e. what is added to the residual stream, and
  ``hook_resid_mid`` the input of the pre-feedforward norm (the raw attention output is *not* attn_out);
- post-norm (OLMo2): as sandwich, with ``hook_resid_mid`` the MLP's input;
- parallel residual (GPT-NeoX/Pythia with ``use_parallel_residual``): attention and MLP both read
  ``hook_resid_pre``, so there is no ``hook_resid_mid`` and the hot path refuses that name.

So ``resid_pre + attn_out = resid_mid`` and ``resid_mid + mlp_out = resid_post`` on every family (tested
against the bridge in ``tests/models/test_families.py``). ``ln_final.hook_normalized`` is TransformerLens's
normalised value *before* the final norm's weight (recomputed from the norm's input, read-only);
``ln_final.hook_out`` is the norm's output, the unembedding's input.

All attachment is scoped: :func:`attach` is a context manager and removes every handle on exit, even
when the forward pass raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
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
_GLOBAL_HOOKS = ("hook_embed", "ln_final.hook_normalized", "ln_final.hook_out")
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
    """The attention module of a decoder layer (its output is the raw attention output)."""
    attn_out_attr: str
    """The module whose output is added to the stream after attention (``hook_attn_out``)."""
    mid_attr: str | None
    """The module whose input is ``hook_resid_mid``; None when attention and MLP run in parallel."""
    mlp_out_attr: str
    """The module whose output is added to the stream after the MLP (``hook_mlp_out``)."""
    norms: str = "pre"
    """Norm placement: ``pre``, ``sandwich`` (Gemma2/3), ``post`` (OLMo2) or ``parallel`` (GPT-NeoX)."""


@dataclass(frozen=True)
class HookSite:
    """One hook name resolved to a module and the side of it the activation lives on."""

    name: str
    module: nn.Module
    side: str  # "input" or "output"
    writable: bool
    derive: Callable[[torch.Tensor], torch.Tensor] | None = None
    """Computes the named value from the module's activation (read-only sites such as ``hook_normalized``)."""


def _norm_placement(children: dict, config) -> tuple[str, str, str | None, str]:
    """``(norms, attn_out_attr, mid_attr, mlp_out_attr)`` from a decoder layer's child names and config."""
    has = set(children)
    if {"post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"} <= has:
        return "sandwich", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"
    if {"post_attention_layernorm", "post_feedforward_layernorm"} <= has and "input_layernorm" not in has:
        return "post", "post_attention_layernorm", "mlp", "post_feedforward_layernorm"
    if "post_feedforward_layernorm" in has or "pre_feedforward_layernorm" in has:
        raise ValueError(f"unrecognised norm placement (children {sorted(has)})")
    norm2 = next((n for n in ("post_attention_layernorm", "ln_2") if n in has), None)
    if norm2 is None:
        raise ValueError(f"no pre-MLP norm (children {sorted(has)})")
    if getattr(config, "use_parallel_residual", False) or getattr(config, "parallel_attn", False):
        return "parallel", "", None, "mlp"
    return "pre", "", norm2, "mlp"


def find_layout(model: nn.Module, n_layers: int) -> ModelLayout:
    """Locate decoder layers, embedding, final norm and the modules behind each hook name.

    Pre-norm (Llama, Qwen2/3, Mistral, GPT-2), sandwich-norm (Gemma2/3), post-norm (OLMo2) and
    parallel-residual (GPT-NeoX) layers are supported; anything else raises ``ValueError``.
    """
    layers = next((m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers), None)
    if layers is None:
        raise ValueError(f"{type(model).__name__}: found no ModuleList of {n_layers} decoder layers")
    children = dict(layers[0].named_children())
    attn = next((n for n in ("self_attn", "attn", "attention") if n in children), None)
    try:
        if attn is None or "mlp" not in children:
            raise ValueError(f"no attention or no mlp (children {list(children)})")
        norms, attn_out, mid, mlp_out = _norm_placement(children, getattr(model, "config", None))
    except ValueError as e:
        raise ValueError(
            f"{type(layers[0]).__name__}: unsupported decoder layer: {e}; use the bridge for this architecture"
        ) from None
    base = getattr(model, "base_model", model)
    final = next(
        (getattr(base, n) for n in ("norm", "ln_f", "final_layernorm", "final_layer_norm") if hasattr(base, n)), None
    )
    return ModelLayout(
        layers=layers, embed=model.get_input_embeddings(), final_norm=final, attn_attr=attn,
        attn_out_attr=attn_out or attn, mid_attr=mid, mlp_out_attr=mlp_out, norms=norms,
    )  # fmt: skip


def _block_hooks(layout: ModelLayout | None) -> tuple[str, ...]:
    if layout is not None and layout.mid_attr is None:
        return tuple(h for h in HOT_PATH_HOOKS if h != "hook_resid_mid")
    return HOT_PATH_HOOKS


def hot_path_names(n_layers: int, layout: ModelLayout | None = None) -> list[str]:
    """Every hook name the hot path supports for a model of ``n_layers`` layers (of ``layout``, if given)."""
    names = ["hook_embed"]
    names += [f"blocks.{i}.{h}" for i in range(n_layers) for h in _block_hooks(layout)]
    if layout is None or layout.final_norm is not None:
        names += ["ln_final.hook_normalized", "ln_final.hook_out"]
    return names


def _normalise(norm: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """TransformerLens's ``hook_normalized`` of ``norm``: its input centred (LayerNorm) and scaled, no weight."""
    eps = next((getattr(norm, a) for a in ("variance_epsilon", "eps") if hasattr(norm, a)), None)
    if not isinstance(eps, float):
        raise UnknownHookError(
            f"ln_final.hook_normalized: cannot read the epsilon of {type(norm).__name__}; use model.bridge"
        )
    centre = isinstance(norm, nn.LayerNorm)  # RMSNorms (Llama, Qwen, Gemma, OLMo2) do not centre

    def normalise(x: Float[torch.Tensor, "batch pos d_model"]) -> Float[torch.Tensor, "batch pos d_model"]:
        h = x.float()  # float32 like the norms themselves
        if centre:
            h = h - h.mean(-1, keepdim=True)
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    return normalise


def parse_layer(name: str) -> int | None:
    """The layer index in a ``blocks.{i}.…`` hook name, else None."""
    m = re.match(r"^blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def resolve_site(layout: ModelLayout, name: str) -> HookSite:
    """Map a TransformerLens hook name to a module hook; unknown names list the valid ones."""
    n_layers = len(layout.layers)
    if name == "hook_embed":
        return HookSite(name, layout.embed, "output", True)
    if name == "ln_final.hook_out" and layout.final_norm is not None:
        return HookSite(name, layout.final_norm, "output", True)
    if name == "ln_final.hook_normalized" and layout.final_norm is not None:
        # TransformerLens's value sits inside the norm (before the weight): recomputed, so read-only.
        return HookSite(name, layout.final_norm, "input", False, derive=_normalise(layout.final_norm))
    m = _NAME.match(name)
    if m and int(m.group(1)) < n_layers and m.group(2) == "hook_resid_mid" and layout.mid_attr is None:
        raise UnknownHookError(
            f"hook {name!r}: this model's attention and MLP run in parallel (both read hook_resid_pre), so "
            "there is no resid_mid; use hook_resid_pre, hook_attn_out, hook_mlp_out or hook_resid_post"
        )
    if m and int(m.group(1)) < n_layers and m.group(2) in HOT_PATH_HOOKS:
        layer = layout.layers[int(m.group(1))]
        kind = m.group(2)
        if kind == "hook_resid_pre":
            return HookSite(name, layer, "input", True)
        if kind == "hook_resid_post":
            return HookSite(name, layer, "output", True)
        if kind == "hook_attn_out":  # what is added to the stream: after Gemma's post-attention norm
            return HookSite(name, getattr(layer, layout.attn_out_attr), "output", True)
        if kind == "hook_mlp_out":  # after Gemma's post-feedforward norm
            return HookSite(name, getattr(layer, layout.mlp_out_attr), "output", True)
        # resid_mid is the input of the pre-MLP norm (OLMo2: of the MLP): readable, but editing it would
        # not change the residual stream itself, so the hot path refuses writes there.
        return HookSite(name, getattr(layer, layout.mid_attr), "input", False)
    block = ",".join(_block_hooks(layout))
    raise UnknownHookError(
        f"hook {name!r} is not available on the hot path of this {n_layers}-layer model. Valid names: "
        f"hook_embed, blocks.{{0..{n_layers - 1}}}.{{{block}}}, ln_final.hook_normalized, ln_final.hook_out. "
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


def _derived(site: HookSite, fn: HookFn) -> HookFn:
    """Give ``fn`` the site's derived value; derived values are read-only (an edit could not flow back)."""

    def call(activation: torch.Tensor, hook: HookPoint):
        new = fn(site.derive(activation), hook)
        if isinstance(new, torch.Tensor):
            raise RuntimeError(f"{site.name} is read-only on the hot path; edit ln_final.hook_out instead")
        return new  # None, or a wrong type that _checked reports

    return call


@contextmanager
def attach(layout: ModelLayout, hooks: Sequence[tuple[str, HookFn]]) -> Iterator[None]:
    """Attach ``(name, fn)`` hooks for the duration of the block; all are removed on exit, errors included."""
    sites = [(resolve_site(layout, name), fn) for name, fn in hooks]  # validate all before attaching any
    handles = []
    try:
        for site, fn in sites:
            handles.append(_make_handle(site, _derived(site, fn) if site.derive else fn))
        yield
    finally:
        for h in handles:
            h.remove()
