"""Training the embedded reasoning model: a small Qwen2-architecture causal LM on the synthetic task.

Run as a command::

    python -m workbench.toy.train --out artifacts/models/embedded --steps 3000

The result is a real Hugging Face folder (``config.json``, ``model.safetensors``, tokenizer files) plus
``model_card.md`` and ``training.json``; it loads through exactly the path a downloaded model takes.
Loss is computed on chain-of-thought tokens only: the prompt's values are random and unpredictable.

Training resumes: a checkpoint (weights as safetensors, optimiser state through
``torch.load(weights_only=True)``) is written atomically every ``--save-every`` steps under ``--checkpoint-dir``;
re-running the same command continues from it. Each step's batch is drawn from a seed derived from the
step number, so a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm
from transformers import Qwen2Config, Qwen2ForCausalLM

from workbench.atomic import atomic_path
from workbench.toy.card import write_json_atomic, write_model_card
from workbench.toy.evaluate import HELDOUT_SEED, evaluate, heldout_problems
from workbench.toy.task import TaskConfig, generate_samples
from workbench.toy.tokenizer import build_char_tokenizer

__all__ = ["Phase", "TrainConfig", "train", "encode_batch", "main"]


@dataclass(frozen=True, kw_only=True)
class Phase:
    """A later training phase: more steps on a changed task, with its own warm-up and cosine schedule.

    The first phase is ``TrainConfig``'s own ``steps``/``lr``/``warmup``/``task``; each ``Phase`` continues
    from the weights and optimiser state where the previous one stopped. Used to add a phase with more
    injected errors and self-corrections once the model reads values reliably, so that it learns to
    notice its own mistakes."""

    steps: int
    """Optimiser steps in this phase."""
    lr: float
    """Peak learning rate of this phase (cosine decay to 10% of it over the phase)."""
    warmup: int = 0
    """Linear warm-up steps at the start of the phase."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The task this phase's batches are drawn from."""

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"Phase.steps={self.steps}: a phase needs at least one step")
        if not 0 < self.lr < 1:
            raise ValueError(f"Phase.lr={self.lr}: use a learning rate in (0, 1)")
        if not 0 <= self.warmup <= self.steps:
            raise ValueError(f"Phase.warmup={self.warmup}: use 0..steps ({self.steps})")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Model size, optimiser and schedule for the embedded model."""

    out: str = "artifacts/models/embedded"
    """Output folder: becomes a Hugging Face model folder."""
    checkpoint_dir: str = "artifacts/runs/train-embedded"
    """Where resumable checkpoints go (kept out of the shipped folder)."""
    hidden_size: int = 128
    """d_model of the transformer."""
    n_layers: int = 4
    """Number of decoder layers."""
    n_heads: int = 4
    """Attention heads per layer (key/value heads are the same number)."""
    intermediate_size: int = 512
    """Width of the MLP."""
    steps: int = 3000
    """Optimiser steps in total (a resumed run continues up to this number)."""
    batch_size: int = 64
    """Sequences per step."""
    lr: float = 2e-3
    """Peak AdamW learning rate."""
    warmup: int = 200
    """Linear warm-up steps before cosine decay to 10% of ``lr``."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""
    seed: int = 0
    """Seed for the weights and for the data stream."""
    save_every: int = 200
    """Write a resumable checkpoint every this many steps."""
    eval_every: int = 500
    """Greedy-accuracy check on held-out problems every this many steps (0: never)."""
    threads: int = 0
    """torch CPU threads (0: torch's default)."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The task the training data is drawn from (behaviours included)."""
    phases: tuple[Phase, ...] = ()
    """Later phases run after the first ``steps`` (each with its own task and schedule); see ``Phase``."""

    @property
    def total_steps(self) -> int:
        """Steps of all phases together."""
        return self.steps + sum(p.steps for p in self.phases)

    def phase_at(self, step: int) -> tuple[int, int, float, int, TaskConfig]:
        """``(phase start, phase steps, lr, warmup, task)`` of the phase that global ``step`` falls in."""
        start, spec = 0, (self.steps, self.lr, self.warmup, self.task)
        for phase in self.phases:
            if step < start + spec[0]:
                break
            start += spec[0]
            spec = (phase.steps, phase.lr, phase.warmup, phase.task)
        return (start, *spec)

    def __post_init__(self) -> None:
        for name in ("hidden_size", "n_layers", "n_heads", "intermediate_size", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.hidden_size % self.n_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by n_heads={self.n_heads}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr={self.lr}: use a learning rate in (0, 1)")


def encode_batch(tokenizer, prompts: list[str], completions: list[str]) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``/``attention_mask`` and ``labels`` that are -100 outside completion+eos."""
    rows, masks = [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(p + c)
        masks.append([0] * len(p) + [1] * len(c))
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    attn = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    loss_mask = torch.tensor([m + [0] * (width - len(m)) for m in masks], dtype=torch.bool)
    labels = torch.where(loss_mask, ids, torch.full_like(ids, -100))
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def _lr_at(step: int, cfg: TrainConfig) -> float:
    start, steps, lr, warmup, _ = cfg.phase_at(step)
    local = step - start
    if local < warmup:
        return lr * (local + 1) / warmup
    progress = (local - warmup) / max(1, steps - warmup)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _model_config(cfg: TrainConfig, tokenizer) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        use_cache=True,
    )


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _save_checkpoint(model, opt, step: int, ckpt: Path) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckpt / "model.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}, tmp)
    _atomic_torch_save({"optimizer": opt.state_dict(), "step": step}, ckpt / "state.pt")


def quick_accuracy(model, tokenizer, task: TaskConfig, n: int = 128, seed: int = HELDOUT_SEED) -> float:
    """Greedy final-answer accuracy on ``n`` clean held-out problems (a fast check used while training)."""
    model.eval()
    try:
        return evaluate(model, tokenizer, heldout_problems(task, n, seed=seed), progress=False).accuracy
    finally:
        model.train()


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) and write the Hugging Face folder; returns the training record."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    ckpt = Path(cfg.checkpoint_dir)
    tokenizer = build_char_tokenizer()
    torch.manual_seed(cfg.seed)
    model = Qwen2ForCausalLM(_model_config(cfg, tokenizer))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98))
    start = 0
    record_path = out / "training.json"
    history = json.loads(record_path.read_text())["history"] if record_path.exists() else []
    if (ckpt / "state.pt").exists():
        model.load_state_dict(load_file(ckpt / "model.safetensors"), strict=False)
        model.tie_weights()
        state = torch.load(ckpt / "state.pt", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        start = state["step"]
        print(f"resuming from step {start}")
    model.train()
    t0 = time.time()
    ema = None
    total = cfg.total_steps
    bar = tqdm(range(start, total), initial=start, total=total, desc="train", mininterval=10)
    for step in bar:
        task = cfg.phase_at(step)[4]
        samples = generate_samples(task, cfg.batch_size, seed=cfg.seed * 1_000_003 + step, prefix="t")
        batch = encode_batch(tokenizer, [s.problem.prompt for s in samples], [s.completion for s in samples])
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}", refresh=False)
        done = step + 1
        if done % cfg.save_every == 0 or done == total:
            _save_checkpoint(model, opt, done, ckpt)
        if cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
            acc = quick_accuracy(model, tokenizer, cfg.task)
            history.append(
                {"step": done, "loss_ema": round(ema, 4), "greedy_acc": acc, "elapsed_s": round(time.time() - t0, 1)}
            )
            print(json.dumps(history[-1]), flush=True)
            _write_record(record_path, cfg, history)
    _export(model, tokenizer, out)
    record = _write_record(record_path, cfg, history, n_params=sum(p.numel() for p in model.parameters()))
    write_model_card(out)
    return record


def _write_record(path: Path, cfg: TrainConfig, history: list, n_params: int | None = None) -> dict:
    machine = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    record = {
        "config": dataclasses.asdict(cfg),
        "history": history,
        "n_params": n_params,
        "command": "python -m workbench.toy.train " + " ".join(sys.argv[1:]),
        "machine": machine,
        "torch": torch.__version__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return record


def _export(model, tokenizer, out: Path) -> None:
    """Write the Hugging Face folder into a temp dir, then move the files into place."""
    out.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    for f in staging.iterdir():
        os.replace(f, out / f.name)
    staging.rmdir()


def _parse_args(argv: list[str] | None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m workbench.toy.train", description=__doc__.split("\n")[0])
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("task", "phases"):
            continue
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=type(getattr(defaults, f.name)),
            default=getattr(defaults, f.name),
            help=f" ({getattr(defaults, f.name)!r})",
        )
    for f in dataclasses.fields(TaskConfig):
        parser.add_argument(
            f"--task-{f.name.replace('_', '-')}",
            type=type(getattr(defaults.task, f.name)),
            default=getattr(defaults.task, f.name),
        )
    parser.add_argument(
        "--then",
        action="append",
        default=[],
        metavar="STEPS,LR,WARMUP[,FIELD=VALUE...]",
        help="add a later phase, e.g. '1500,1e-3,50,p_error=0.2,p_correct=0.9' (task fields override the "
        "first phase's task); repeat for more phases",
    )
    ns = vars(parser.parse_args(argv))
    task = TaskConfig(**{k[5:]: v for k, v in ns.items() if k.startswith("task_")})
    phases = tuple(_parse_phase(spec, task, parser) for spec in ns.pop("then"))
    return TrainConfig(task=task, phases=phases, **{k: v for k, v in ns.items() if not k.startswith("task_")})


def _parse_phase(spec: str, task: TaskConfig, parser: argparse.ArgumentParser) -> Phase:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    try:
        steps, lr, warmup = int(parts[0]), float(parts[1]), int(parts[2])
        overrides = {}
        for item in parts[3:]:
            key, value = item.split("=", 1)
            kind = type(getattr(task, key))
            overrides[key] = kind(value)
        return Phase(steps=steps, lr=lr, warmup=warmup, task=dataclasses.replace(task, **overrides))
    except (IndexError, ValueError, AttributeError, TypeError) as e:
        parser.error(f"--then {spec!r}: expected STEPS,LR,WARMUP[,FIELD=VALUE...] with TaskConfig fields ({e})")


def main(argv: list[str] | None = None) -> None:
    record = train(_parse_args(argv))
    print(json.dumps(record["history"][-1:] or {}, indent=2))


if __name__ == "__main__":
    main()
