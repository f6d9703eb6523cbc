"""Loading models: the embedded default, a local Hugging Face folder, or a cached hub name, behind one adapter."""

from workbench.models.adapter import (
    ActivationCache,
    CacheResult,
    WorkbenchModel,
    default_device,
    default_dtype,
    load_model,
)
from workbench.models.hookpoints import HOT_PATH_HOOKS, HookPoint, UnknownHookError
from workbench.models.resolve import ModelLoadError, ModelNotFoundError, embedded_model_dir, resolve_model

__all__ = [
    "load_model",
    "WorkbenchModel",
    "ModelNotFoundError",
    "ModelLoadError",
    "UnknownHookError",
    "HookPoint",
    "ActivationCache",
    "CacheResult",
    "HOT_PATH_HOOKS",
    "resolve_model",
    "embedded_model_dir",
    "default_device",
    "default_dtype",
]
