"""The hot path: plain forward hooks on the unwrapped model that pool each batch's steps on the device.

One callback per hook name does everything that name is needed for (poolings, token features, logit
features at ``ln_final.hook_out``, the unembedding's input) and counts itself; the last site of the
forward raises :class:`_Stop`, so the pass ends right after the deepest requested activation (and never
runs the ``[batch, pos, vocab]`` unembedding). Hooks are attached once per capture inside a scoped context and
read the current batch's :class:`~workbench.capture.pooling.StepIndex` from the recorder.

Attention weights (``TokenFeatureConfig.attn_prev``) need eager attention — sdpa/flash never form them —
so the recorder switches the model to eager for its lifetime and back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.capture.config import CaptureConfig, TokenFeatureConfig
from workbench.capture.logits import step_logit_stats, token_logit_features
from workbench.capture.pooling import HostBatch, attention_to_previous, gather_tokens, pool_steps
from workbench.models import HookPoint, WorkbenchModel

__all__ = ["Recorder", "BatchOutput", "LN_FINAL", "eager_attention"]

LN_FINAL = "ln_final.hook_out"  # the final norm's output (after its weight): what lm_head reads


class _Stop(Exception):
    """Raised by the last hook that fires: nothing deeper in the model is needed."""


@dataclass(frozen=True, kw_only=True)
class BatchOutput:
    """What one batch produced, still on the device."""

    tensors: dict[str, Tensor]
    """Store key → ``[step, ...]`` or ``[tok, ...]`` rows, in the order of the batch's captured steps."""
    logit_stats: Float[Tensor, "step 4"] | None
    """Per-step logit baselines (:data:`~workbench.capture.logits.STEP_STATS`), if requested."""


@contextmanager
def eager_attention(hf_model) -> Iterator[None]:
    """Run the model with eager attention inside the block (attention weights exist only there)."""
    old = hf_model.config._attn_implementation
    if old != "eager":
        hf_model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if old != "eager":
            hf_model.set_attn_implementation(old)


class Recorder:
    """Attach capture hooks (:meth:`attached`), then :meth:`run` one host batch at a time."""

    def __init__(self, model: WorkbenchModel, cfg: CaptureConfig, store_dtype: torch.dtype) -> None:
        self.model = model
        self.cfg = cfg
        self.dtype = store_dtype
        self.hooks = cfg.resolve_hooks(model.n_layers)
        self.tf = cfg.token_features or TokenFeatureConfig()
        self.need_logits = cfg.logit_stats or self.tf.top_k > 0
        names = list(dict.fromkeys([*self.hooks, *self.tf.hooks, *([LN_FINAL] if self.need_logits else [])]))
        model.validate_hooks(names)  # unknown names raise UnknownHookError listing the valid ones
        self.names = names
        n_layers = model.n_layers
        self.attn_layers = (self.tf.attn_layers or tuple(range(n_layers))) if self.tf.attn_prev else ()
        for i in self.attn_layers:
            if not 0 <= i < n_layers:
                raise ValueError(f"attn_layers: {i} is not a layer of this {n_layers}-layer model")
        self.n_sites = len(names) + len(self.attn_layers)
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self._batch: HostBatch | None = None

    # ---- hook callbacks ----------------------------------------------------------------------------
    def _tick(self) -> None:
        self._fired += 1
        if self._fired == self.n_sites:
            raise _Stop

    def _on_activation(self, act: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
        idx, out, name = self._idx, self._out, hook.name
        if name in self.hooks:
            for pooling, vec in pool_steps(act, idx, self.cfg.poolings, self.dtype).items():
                out[f"{name}/{pooling}"] = vec
        if name in self.tf.hooks:
            out[f"tokens/{name}"] = gather_tokens(act, idx).to(self.dtype)
        if name == LN_FINAL and self.need_logits:
            lm_head = self.model.hf_model.get_output_embeddings()
            tl = token_logit_features(act, self._ids, idx, lm_head, top_k=self.tf.top_k, softcap=self.softcap)
            if self.tf.top_k:
                out.update(
                    {
                        "tokens/topk_probs": tl.topk_probs,
                        "tokens/topk_ids": tl.topk_ids,
                        "tokens/entropy": tl.entropy,
                        "tokens/logprob": tl.logprob,
                    }
                )
            if self.cfg.logit_stats:
                self._stats = step_logit_stats(tl, idx)
        self._tick()

    def _attn_hook(self, layer: int):
        def hook(module, args, output) -> None:
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise RuntimeError(
                    f"layer {layer}: the attention module returned no weights; attn_prev needs eager attention"
                )
            self._out[f"tokens/attn_prev.L{layer}"] = attention_to_previous(weights, self._idx, self.tf.attn_prev)
            self._tick()

        return hook

    # ---- lifecycle ---------------------------------------------------------------------------------
    @contextmanager
    def attached(self) -> Iterator[Recorder]:
        """Hooks (and eager attention, if needed) for the duration of the block; removed on exit."""
        with ExitStack() as stack:
            if self.attn_layers:
                stack.enter_context(eager_attention(self.model.hf_model))
            layout = self.model.layout
            for i in self.attn_layers:
                handle = getattr(layout.layers[i], layout.attn_attr).register_forward_hook(self._attn_hook(i))
                stack.callback(handle.remove)
            stack.enter_context(self.model.hooks([(n, self._on_activation) for n in self.names]))
            yield self

    @torch.no_grad()  # not inference_mode: tensors it creates would poison later autograd use of the model
    def run(self, batch: HostBatch) -> BatchOutput:
        """One forward over ``batch`` (inside :meth:`attached`); outputs stay on the device."""
        dev = self.model.device
        self._ids = batch.input_ids.to(dev, non_blocking=dev.type == "cuda")
        self._idx = batch.index.to(dev)
        self._out: dict[str, Tensor] = {}
        self._stats = None
        self._fired = 0
        try:
            # no attention mask: right padding is invisible to a causal model's real positions (pooling.py)
            self.model.hf_model(input_ids=self._ids, use_cache=False)
        except _Stop:
            pass
        if self._fired != self.n_sites:
            raise RuntimeError(f"only {self._fired} of {self.n_sites} capture hooks fired; is the layout right?")
        return BatchOutput(tensors=self._out, logit_stats=self._stats)
