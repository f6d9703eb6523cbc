"""The one owner of transformer-lens: booting a TransformerBridge for exploration.

The bridge gives every TransformerLens hook name (attention patterns, q/k/v, …) and the familiar
``run_with_cache``/``hooks`` API, but booting it mutates the Hugging Face model it wraps and slows its
forward (``docs/hooks.md``: ≈1.9× slower on an H200). We therefore boot it on a *copy* of
the weights, so the adapter's hot path keeps the untouched model. Compatibility mode stays off unless
asked for; the mode is recorded in provenance because it changes activations.
"""

from __future__ import annotations

import copy
import importlib.metadata
import os
from contextlib import contextmanager
from pathlib import Path

from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.model_bridge.sources._bridge_builder import detect_tokenizer_bos_eos

__all__ = ["boot_bridge", "transformer_lens_version", "TransformerBridge"]


@contextmanager
def _offline():
    """Keep the hub offline while transformer-lens loads configs and tokenizers from the local folder."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def boot_bridge(path: Path, hf_model, tokenizer, *, compatibility_mode: bool = False) -> TransformerBridge:
    """Boot a bridge on a deep copy of ``hf_model`` (same device and dtype); the original stays untouched."""
    twin = copy.deepcopy(hf_model)
    param = next(twin.parameters())
    with _offline():
        bridge = TransformerBridge.boot_transformers(
            str(path), device=param.device, dtype=param.dtype, tokenizer=tokenizer, hf_model=twin
        )
    # transformer-lens re-loads the tokenizer through AutoTokenizer, which for some model types rebuilds
    # the pipeline differently from tokenizer.json (see models.adapter._load_tokenizer); keep ours.
    # The public setter re-runs that same re-load, so the private slot is set on purpose.
    bridge._tokenizer = tokenizer
    bridge.cfg.tokenizer_prepends_bos, bridge.cfg.tokenizer_appends_eos = detect_tokenizer_bos_eos(tokenizer)
    if compatibility_mode:
        bridge.enable_compatibility_mode()
    bridge.eval()
    return bridge


def transformer_lens_version() -> str:
    return importlib.metadata.version("transformer-lens")
