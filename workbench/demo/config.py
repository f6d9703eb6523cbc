"""The demo's settings: one frozen dataclass, recorded in the report and used as the CLI's help."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["DemoConfig", "runs_dir", "STAGES"]

STAGES = ("sample", "label", "capture", "sae", "probes", "attribution", "steering")
"""Pipeline stages in order; later ones run when their package is installed and the data allows."""


def runs_dir() -> Path:
    """Where run outputs go: ``$WORKBENCH_RUNS_DIR`` or ``artifacts/runs`` (git ignores it)."""
    default = Path(__file__).resolve().parents[2] / "artifacts" / "runs"
    return Path(os.environ.get("WORKBENCH_RUNS_DIR", default))


@dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """What the demo runs and how much of it."""

    n_problems: int = 128
    """Held-out toy problems to sample (one trace each, temperature 1); prompts read from a file for other models."""
    seed: int = 0
    """Seed of sampling, rollouts, SAE and probe training, steering."""
    quick: bool = False
    """A small version of everything (about two minutes on 2 CPU cores)."""
    model: str | None = None
    """A local Hugging Face model folder (default: the embedded model); without ``prompts`` it gets toy problems."""
    prompts: str | None = None
    """With ``model``: a text file with one prompt per line (blank lines skipped)."""
    segmenter: str = "newline"
    """How completions are cut into steps (a workbench.traces segmenter name; ``double_newline`` for most LLMs)."""
    max_new_tokens: int = 160
    """Generation length limit (tokens)."""
    rollout_traces: int = 24
    """Traces whose steps get Math-Shepherd rollout labels (0: skip rollouts)."""
    n_rollouts: int = 4
    """Rollouts per step prefix."""
    sae_steps: int = 300
    """Training batches of the step SAE."""
    attribution_traces: int = 24
    """Traces for the step-attribution stage."""
    steering_problems: int = 40
    """Problems per steering strength in the sweep (the random control runs the same problems)."""
    stages: tuple[str, ...] = STAGES
    """Stages to run (the first three are always needed by the later ones)."""
    out: str | None = None
    """Run folder (default: <runs>/<UTC timestamp>); report.html, traces and the store go there."""

    def __post_init__(self) -> None:
        for name in ("n_problems", "max_new_tokens", "n_rollouts", "sae_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("rollout_traces", "attribution_traces", "steering_problems"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)}: must be >= 0 (0 skips it)")
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages={self.stages}: unknown {unknown}; choose from {STAGES}")
        if self.prompts is not None and self.model is None:
            raise ValueError("prompts: a prompts file goes with --model PATH (the embedded model uses toy problems)")
        if self.prompts is not None and not Path(self.prompts).is_file():
            raise ValueError(f"prompts={self.prompts!r}: no such file; give a text file with one prompt per line")

    @property
    def toy(self) -> bool:
        """Toy problems with the checker's ground truth (the embedded model) rather than free prompts."""
        return self.prompts is None

    def scaled(self) -> DemoConfig:
        """The ``quick`` variant: fewer problems, rollouts, SAE steps, attribution traces and steering problems."""
        if not self.quick:
            return self
        return replace(
            self,
            n_problems=min(self.n_problems, 48),
            rollout_traces=min(self.rollout_traces, 8),
            sae_steps=min(self.sae_steps, 100),
            attribution_traces=min(self.attribution_traces, 8),
            steering_problems=min(self.steering_problems, 16),
        )
