"""The model adapter: one object per loaded model, hot path and exploration path side by side.

``load_model()`` returns a :class:`WorkbenchModel`. Its hot path is the unwrapped Hugging Face model
with plain PyTorch hooks named the TransformerLens way (:mod:`workbench.models.hookpoints`); its
exploration path is a TransformerBridge booted lazily on a copy of the weights
(:mod:`workbench.models.bridge`). Both read the same weights, so their activations agree (tested).

Everything that attaches to the model is scoped: :meth:`WorkbenchModel.hooks` is a context manager.
The hot path speaks TransformerLens's dialect where it can: hook functions are ``fn(activation, hook)``
with ``hook.name``; the model is callable; ``to_tokens``/``to_string``, ``run_with_cache`` (a cache keyed
by hook name) and ``run_with_hooks`` behave like their TransformerLens namesakes, restricted to the hook
names in :attr:`WorkbenchModel.hook_names` (``docs/hooks.md``).
Provenance (path, weights hash, backend, mode, versions) travels with every artifact made from the model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.models import hookpoints
from workbench.models.resolve import ModelLoadError, ResolvedModel, resolve_model

__all__ = ["WorkbenchModel", "load_model", "default_device", "default_dtype", "ActivationCache", "CacheResult"]

BACKEND = "hf-torch-hooks"


def default_device() -> torch.device:
    """GPU when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU (throughput), float32 on CPU (CPU bf16 matmuls are slow and lossy)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class _StopForward(Exception):
    """Raised by a hook to end a forward pass after the last layer a caller needs."""


def sha256_files(paths: Sequence[Path]) -> str:
    """One sha256 over the bytes of ``paths`` in order (the weights' identity in provenance)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


class ActivationCache(dict):
    """Activations keyed by hook name, as ``run_with_cache`` returns them (a plain ``dict`` underneath).

    Like TransformerLens's cache it also takes ``cache["resid_post", 2]`` for ``blocks.2.hook_resid_post``;
    a missing key raises with the names it holds. Tensors are detached and keep the batch's padding.
    """

    def __getitem__(self, key):
        if isinstance(key, tuple) and len(key) == 2:
            kind, layer = key
            key = f"blocks.{layer}.{kind if kind.startswith('hook_') else 'hook_' + kind}"
        try:
            return super().__getitem__(key)
        except KeyError:
            raise KeyError(f"{key!r} is not in this cache; it holds {sorted(self)}") from None


class CacheResult(NamedTuple):
    """What :meth:`WorkbenchModel.run_with_cache` returns; unpacks as ``logits, cache``."""

    logits: Float[Tensor, "batch pos vocab"]
    cache: ActivationCache


#: What ``names_filter`` accepts: None (every hot-path hook), one name, a list of names, or a predicate.
NamesFilter = str | Sequence[str] | Callable[[str], bool] | None


@dataclass(eq=False)
class WorkbenchModel:
    """A loaded causal LM: tokenizer, hot-path forward/generate with scoped hooks, lazy bridge, provenance."""

    hf_model: torch.nn.Module
    """The unwrapped Hugging Face model (hot path). Never booted into the bridge."""
    tokenizer: object
    """The model's fast tokenizer (offset mapping available)."""
    resolved: ResolvedModel
    """Where the model came from."""
    device: torch.device
    dtype: torch.dtype
    compatibility_mode: bool = False
    """Passed to the bridge's ``enable_compatibility_mode`` when it boots (changes activations)."""
    _layout: hookpoints.ModelLayout = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._layout = hookpoints.find_layout(self.hf_model, self.n_layers)

    # ---- shape facts -------------------------------------------------------------------------------
    @property
    def config(self):
        return self.hf_model.config

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.config.hidden_size)

    @property
    def n_ctx(self) -> int:
        """Longest sequence the model accepts (``max_position_embeddings``)."""
        return int(getattr(self.config, "max_position_embeddings", 0) or self.tokenizer.model_max_length)

    @property
    def hook_names(self) -> list[str]:
        """Hook names the hot path supports (the bridge has more: ``model.bridge.hook_dict``)."""
        return hookpoints.hot_path_names(self.n_layers, self._layout)

    @property
    def layout(self) -> hookpoints.ModelLayout:
        return self._layout

    # ---- hot path ----------------------------------------------------------------------------------
    def validate_hooks(self, names: Sequence[str]) -> None:
        """Raise :class:`~workbench.models.hookpoints.UnknownHookError` listing valid names for a bad one."""
        for name in names:
            hookpoints.resolve_site(self._layout, name)

    @contextmanager
    def hooks(self, fwd_hooks: Sequence[tuple[str, hookpoints.HookFn]]) -> Iterator[WorkbenchModel]:
        """Attach ``(hook_name, fn)`` pairs to the hot path for the block; removed on exit, errors included."""
        with hookpoints.attach(self._layout, fwd_hooks):
            yield self

    @torch.no_grad()  # not inference_mode: its tensors cannot enter autograd later (gradient steering)
    def forward(
        self,
        input_ids: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        *,
        stop_at_layer: int | None = None,
    ) -> Float[Tensor, "batch pos vocab"] | None:
        """Logits of the hot path; with ``stop_at_layer=k`` the pass ends after layer ``k`` (returns None)."""
        input_ids = input_ids.to(self.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        if stop_at_layer is None:
            return self.hf_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        if not 0 <= stop_at_layer < self.n_layers:
            raise ValueError(f"stop_at_layer={stop_at_layer}: must be in [0, {self.n_layers - 1}]")

        def stop(module, args, output):
            raise _StopForward

        handle = self._layout.layers[stop_at_layer].register_forward_hook(stop)
        try:
            self.hf_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        except _StopForward:
            pass
        finally:
            handle.remove()
        return None

    @torch.no_grad()
    def generate(
        self, input_ids: Int[Tensor, "batch pos"], attention_mask: Int[Tensor, "batch pos"], **kwargs
    ) -> Int[Tensor, "batch total"]:
        """Hugging Face ``generate`` on the hot path (KV cache on); hooks attached with :meth:`hooks` fire."""
        kwargs.setdefault("pad_token_id", self.tokenizer.pad_token_id)
        return self.hf_model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device), **kwargs
        )

    def tokenize(self, texts: Sequence[str], *, padding_side: str = "right") -> dict[str, Tensor]:
        """Batch-encode ``texts`` without special tokens (the workbench adds none), padded on ``padding_side``.

        Right padding (the default) keeps token ``i`` of every row at position ``i``, so a step's
        ``token_start``/``boundary_token`` index the batch directly; left padding (for batched generation)
        shifts each row by its padding. For step vectors use :func:`workbench.capture.step_activations`.
        """
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side={padding_side!r}: use 'right' or 'left'")
        old = self.tokenizer.padding_side
        self.tokenizer.padding_side = padding_side
        try:
            return self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            self.tokenizer.padding_side = old

    # ---- TransformerLens habits on the hot path ------------------------------------------------------
    def to_tokens(
        self, input: str | Sequence[str], *, padding_side: str = "right", move_to_device: bool = True
    ) -> Int[Tensor, "batch pos"]:
        """Token ids ``[batch, pos]`` of one text or a list, with no special tokens added.

        Padding is on the right by default (as in TransformerLens), so position ``i`` of every row is the
        text's own token ``i``: ``Step.boundary_token`` indexes it directly, and a causal model's real
        positions do not see the padding. Use :meth:`tokenize` for an attention mask or left padding.
        """
        texts = [input] if isinstance(input, str) else list(input)
        tokens = self.tokenize(texts, padding_side=padding_side)["input_ids"]
        return tokens.to(self.device) if move_to_device else tokens

    def to_string(self, tokens: Int[Tensor, "... pos"] | Sequence[int]) -> str | list[str]:
        """Decode one sequence of ids to a string, or a ``[batch, pos]`` tensor to a list of strings."""
        if isinstance(tokens, Tensor) and tokens.dim() == 2:
            return [self.to_string(row) for row in tokens]
        ids = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _inputs(
        self, input: str | Sequence[str] | Tensor, attention_mask: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        """Token ids (and mask) for text or ids; texts are padded on the right with a mask."""
        if isinstance(input, Tensor):
            ids = input.unsqueeze(0) if input.dim() == 1 else input
            if attention_mask is not None and attention_mask.dim() == 1:
                attention_mask = attention_mask.unsqueeze(0)
            return ids, attention_mask
        if attention_mask is not None:
            raise ValueError("attention_mask: pass it only with token ids; texts get their own mask")
        enc = self.tokenize([input] if isinstance(input, str) else list(input), padding_side="right")
        return enc["input_ids"], enc["attention_mask"]

    def __call__(
        self,
        input: str | Sequence[str] | Int[Tensor, "batch pos"],
        *,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        return_type: str | None = "logits",
    ) -> Float[Tensor, "batch pos vocab"] | None:
        """Run the hot path on text or token ids, like calling a TransformerLens model.

        ``return_type="logits"`` (default) returns the logits; ``None`` runs the model for its hooks only.
        """
        if return_type not in ("logits", None):
            raise ValueError(f"return_type={return_type!r}: use 'logits' or None")
        logits = self.forward(*self._inputs(input, attention_mask))
        return logits if return_type == "logits" else None

    def _filter_names(self, names_filter: NamesFilter) -> list[str]:
        """The hot-path hook names ``names_filter`` selects; unknown or no names raise with the valid ones."""
        valid = self.hook_names
        if names_filter is None:
            return valid
        if isinstance(names_filter, str):
            names = [names_filter]
        elif callable(names_filter):
            names = [n for n in valid if names_filter(n)]
        else:
            names = list(dict.fromkeys(names_filter))
        if not names:
            raise hookpoints.UnknownHookError(
                f"names_filter={names_filter!r} matches none of this model's hot-path hooks: {', '.join(valid)}. "
                "Other TransformerLens names are available through model.bridge"
            )
        self.validate_hooks(names)
        return names

    def run_with_cache(
        self,
        input: str | Sequence[str] | Int[Tensor, "batch pos"],
        *,
        names_filter: NamesFilter = None,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> CacheResult:
        """Logits and an :class:`ActivationCache` of the selected hot-path hooks, from one forward pass.

        ``names_filter`` is None (every hook in :attr:`hook_names`), a name, a list of names, or a predicate
        on names, as in TransformerLens; one that selects nothing raises and lists the valid names.
        """
        cache = ActivationCache()

        def save(act: Tensor, hook: hookpoints.HookPoint) -> None:
            cache[hook.name] = act.detach()

        names = self._filter_names(names_filter)
        with self.hooks([(n, save) for n in names]):
            logits = self(input, attention_mask=attention_mask)
        return CacheResult(logits=logits, cache=ActivationCache((n, cache[n]) for n in names))

    def run_with_hooks(
        self,
        input: str | Sequence[str] | Int[Tensor, "batch pos"],
        *,
        fwd_hooks: Sequence[tuple[str | Callable[[str], bool], hookpoints.HookFn]] = (),
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        return_type: str | None = "logits",
    ) -> Float[Tensor, "batch pos vocab"] | None:
        """One forward with ``(name or predicate, fn)`` hooks attached for the call only, like TransformerLens."""
        pairs = [(n, fn) for name, fn in fwd_hooks for n in self._filter_names(name)]
        with self.hooks(pairs):
            return self(input, attention_mask=attention_mask, return_type=return_type)

    # ---- exploration path --------------------------------------------------------------------------
    @cached_property
    def bridge(self):
        """A TransformerBridge on a copy of the weights (booted on first use; every TransformerLens hook)."""
        from workbench.models.bridge import boot_bridge

        return boot_bridge(
            self.resolved.path, self.hf_model, self.tokenizer, compatibility_mode=self.compatibility_mode
        )

    # ---- provenance --------------------------------------------------------------------------------
    @cached_property
    def weights_sha256(self) -> str:
        return sha256_files(sorted(self.resolved.path.glob("*.safetensors")))

    def provenance(self) -> dict:
        """What made this model: a JSON-ready dict recorded in every artifact's manifest."""
        import transformers

        from workbench.models.bridge import transformer_lens_version

        return {
            "model": self.resolved.spec,
            "path": str(self.resolved.path),
            "source": self.resolved.source,
            "architecture": type(self.hf_model).__name__,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "weights_sha256": self.weights_sha256,
            "backend": BACKEND,
            "bridge_compatibility_mode": self.compatibility_mode,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "transformer_lens": transformer_lens_version(),
        }


def _load_tokenizer(path: Path):
    """The folder's tokenizer exactly as ``tokenizer.json`` defines it, else whatever AutoTokenizer builds.

    transformers 5 maps ``model_type`` to a tokenizer class that may rebuild the pipeline (Qwen2Tokenizer
    swaps in its own byte-level pre-tokenizer, which silently drops a character tokenizer's newlines), so a
    ``tokenizer.json`` is loaded verbatim: it is the folder's ground truth for real models too.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


def _own_weights(hf_model) -> None:
    """Give every parameter and buffer its own memory.

    On CPU, safetensors weights that need no conversion stay memory-mapped from the file, so a loaded model
    would silently change if its ``model.safetensors`` were overwritten in place (a retrain copying new
    weights over the folder did that to a running benchmark). Tensors already copied (another device or
    dtype) are left alone; on CPU every tensor is copied once, one at a time (torch does not say which
    storages are mapped).
    """
    with torch.no_grad():
        for t in [*hf_model.parameters(), *hf_model.buffers()]:
            if t.device.type == "cpu":
                t.data = t.data.clone()


def load_model(
    model: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    compatibility_mode: bool = False,
) -> WorkbenchModel:
    """Load the embedded model (default), a local Hugging Face folder, or a hub name already in the cache.

    Never downloads: a missing model raises ``ModelNotFoundError`` saying where it looked. Weights load
    only from safetensors. Device defaults to CUDA when present, dtype to bf16 on GPU and float32 on CPU.
    """
    from transformers import AutoModelForCausalLM

    resolved = resolve_model(model)
    dev = torch.device(device) if device is not None else default_device()
    if isinstance(dtype, str):
        if not isinstance(getattr(torch, dtype, None), torch.dtype):
            raise ValueError(f"dtype={dtype!r}: use a torch dtype name such as 'float32' or 'bfloat16'")
        dtype = getattr(torch, dtype)
    dt = dtype or default_dtype(dev)
    try:
        tokenizer = _load_tokenizer(resolved.path)
        hf_model = AutoModelForCausalLM.from_pretrained(
            resolved.path, local_files_only=True, use_safetensors=True, dtype=dt
        )
    except Exception as e:  # safetensors, json, tokenizers and torch all raise their own types
        raise ModelLoadError(
            f"could not load the model in {resolved.path}: {type(e).__name__}: {e}. "
            "The folder looks incomplete or corrupted; restore it from the original "
            "checkpoint (config.json, *.safetensors, tokenizer files)"
        ) from e
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{resolved.path}: the tokenizer is not a fast tokenizer; step spans need offset "
            "mappings (save a tokenizer.json)"
        )
    if tokenizer.pad_token_id is None:  # many base models ship without one; generation needs it
        tokenizer.pad_token = tokenizer.eos_token
    hf_model.to(dev).eval()
    _own_weights(hf_model)
    return WorkbenchModel(
        hf_model=hf_model,
        tokenizer=tokenizer,
        resolved=resolved,
        device=dev,
        dtype=dt,
        compatibility_mode=compatibility_mode,
    )
