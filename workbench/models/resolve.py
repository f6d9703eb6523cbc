"""Finding a model on disk: the embedded default, a local Hugging Face folder, or a cached hub name.

Never touches the network. A spec that names nothing on disk raises :class:`ModelNotFoundError` saying
every place that was searched and how to provide the folder; a folder that exists but cannot be used
(no config, no safetensors weights, no tokenizer) raises :class:`ModelLoadError` naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelNotFoundError", "ModelLoadError", "ResolvedModel", "resolve_model", "embedded_model_dir"]

EMBEDDED_ENV = "WORKBENCH_EMBEDDED_MODEL"


class ModelNotFoundError(FileNotFoundError):
    """No model at the places a spec could mean."""


class ModelLoadError(RuntimeError):
    """A model folder exists but is incomplete or corrupted."""


@dataclass(frozen=True, kw_only=True)
class ResolvedModel:
    """Where a model spec points on disk."""

    spec: str
    """What the caller asked for (``"embedded"``, a path, or a hub name)."""
    path: Path
    """The Hugging Face folder holding config, weights and tokenizer."""
    source: str
    """``embedded``, ``local`` or ``hf-cache``."""


def embedded_model_dir() -> Path:
    """The shipped embedded model (``artifacts/models/embedded``), or ``$WORKBENCH_EMBEDDED_MODEL``."""
    if env := os.environ.get(EMBEDDED_ENV):
        return Path(env)
    return Path(__file__).resolve().parents[2] / "artifacts" / "models" / "embedded"


def _from_hf_cache(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - transformers always brings huggingface_hub
        return None
    try:
        return Path(snapshot_download(repo_id=name, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def check_model_folder(path: Path) -> None:
    """Raise :class:`ModelLoadError` unless ``path`` has a readable config, safetensors weights, a tokenizer."""
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"{path} has no config.json; a Hugging Face model folder needs config.json, "
            "*.safetensors weights and tokenizer files (save with model.save_pretrained)"
        )
    try:
        json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{config} is not valid JSON ({e}); restore the file from the original checkpoint") from e
    if not any(path.glob("*.safetensors")):
        found = sorted(p.name for p in path.iterdir() if p.suffix in {".bin", ".pt", ".pth", ".ckpt"})
        hint = (
            (
                f" It has {found}: pickled weights are never loaded; convert them once with "
                "model.save_pretrained(dir, safe_serialization=True)"
            )
            if found
            else ""
        )
        raise ModelLoadError(f"{path} has no *.safetensors weights.{hint}")
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer.model", "vocab.json")):
        raise ModelLoadError(
            f"{path} has no tokenizer (tokenizer.json, tokenizer.model or vocab.json); "
            "save it beside the weights with tokenizer.save_pretrained(dir)"
        )


def resolve_model(spec: str | os.PathLike | None = None) -> ResolvedModel:
    """Turn ``None``/``"embedded"``, a folder path, or a hub name already in the local cache into a folder."""
    if spec is None or str(spec) == "embedded":
        path = embedded_model_dir()
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"the embedded model is missing: looked in {path}. Restore artifacts/models/embedded from "
                f"git, train it with `python -m workbench.toy.train`, or point ${EMBEDDED_ENV} at a folder"
            )
        check_model_folder(path)
        return ResolvedModel(spec="embedded", path=path, source="embedded")
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"model={text!r} is a file; pass the folder that holds config.json")
        check_model_folder(path)
        return ResolvedModel(spec=text, path=path.resolve(), source="local")
    looked = [f"folder {path.resolve()}"]
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        cached = _from_hf_cache(text)
        if cached is not None:
            check_model_folder(cached)
            return ResolvedModel(spec=text, path=cached, source="hf-cache")
        looked.append(f"Hugging Face cache {_hf_cache_dir()} for {text!r}")
    raise ModelNotFoundError(
        f"model={text!r} not found; looked in: {'; '.join(looked)}. Nothing is downloaded: copy the model "
        "folder (config.json, *.safetensors, tokenizer files) to this machine and pass its path, "
        "or fill the Hugging Face cache on a machine with network access"
    )
