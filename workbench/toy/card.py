"""The embedded model's card: how it was trained and what it measurably does.

``model_card.md`` is written from two JSON records that live beside the weights: ``training.json``
(written by ``workbench.toy.train``) and ``evaluation.json`` (written by ``benchmarks/embedded_model.py``).
The card never contains a number that is not in those records.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.atomic import atomic_write_text

__all__ = ["write_model_card", "write_json_atomic"]


def write_json_atomic(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _total_seconds(history: list[dict]) -> int:
    """Wall time over all runs: ``elapsed_s`` restarts from zero when a run resumes."""
    total, prev = 0.0, 0.0
    for h in history:
        if h["elapsed_s"] < prev:
            total += prev
        prev = h["elapsed_s"]
    return round(total + prev)


def _eval_section(ev: dict) -> list[str]:
    rows = [
        "| set | traces | final-answer accuracy | fresh wrong-step rate | wrong steps corrected by `wait` "
        "| `check` per compute step | garbled lines | wrong answers with a garbled line |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, title in (
        ("greedy_in_distribution", "greedy, in distribution"),
        ("greedy_out_of_distribution", "greedy, longer programs (OOD)"),
        ("sampled_t1", "sampled, temperature 1"),
    ):
        if key in ev:
            s = ev[key]
            rows.append(
                f"| {title} | {s['n_traces']} | {_pct(s['accuracy'])} | {_pct(s['fresh_error_rate'])} | "
                f"{_pct(s['corrected_share'])} | {_pct(s['check_rate'])} | {_pct(s['garbled_rate'])} | "
                f"{_pct(s.get('failures_garbled', 0.0))} |"
            )
    meta = ev.get("meta", {})
    return [
        "## Measured properties",
        "",
        f"Measured by `{meta.get('command', 'python benchmarks/embedded_model.py')}` on {meta.get('date', '?')} "
        f"({meta.get('machine', '?')}, {meta.get('seconds', '?')} s). In distribution: "
        f"{meta.get('id_task', '?')}; out of distribution: {meta.get('ood_task', '?')}.",
        "",
        *rows,
        "",
        "A *fresh* wrong step states a value that does not follow from what the trace stated before (a new "
        "mistake, not a propagated one). All labels come from the checker (`workbench.toy.checker`).",
        "",
        *_probe_section(ev.get("fresh_error_probe")),
    ]


def _probe_section(probe: dict | None) -> list[str]:
    if not probe:
        return []
    layers = probe["roc_auc_by_layer"]
    return [
        "### Does the model represent its own fresh errors?",
        "",
        f"A logistic-regression probe (scikit-learn, standardised, fitted on {probe['train_steps']} compute "
        f"steps of {probe['train_problems']} problems, scored on {probe['test_steps']} compute steps "
        f"({probe['test_positives']} fresh errors) of {probe['test_problems']} other problems) on the "
        f"`{probe['pooling']}` vector of the model's own sampled compute steps (temperature 1) separates fresh "
        "errors from correct steps with this held-out ROC-AUC:",
        "",
        "| hook | " + " | ".join(layers) + " |",
        "|---|" + "---|" * len(layers),
        "| ROC-AUC | " + " | ".join(f"{v:.3f}" for v in layers.values()) + " |",
        "",
    ]


def write_model_card(model_dir: str | os.PathLike) -> Path:
    """(Re)write ``model_card.md`` in ``model_dir`` from its ``training.json`` and ``evaluation.json``."""
    model_dir = Path(model_dir)
    train = json.loads((model_dir / "training.json").read_text())
    cfg = train["config"]
    last = train["history"][-1] if train["history"] else {}
    task = cfg["task"]
    phases = cfg.get("phases") or []
    lines = [
        "# Embedded reasoning model",
        "",
        "A small Qwen2-architecture causal LM with a character tokenizer, trained by "
        "`workbench/toy/train.py` on the workbench's synthetic multi-step arithmetic task "
        "(`workbench/toy/task.py`). It is the default model of the demo, the notebooks and the tests, and it "
        "loads through `load_model()` exactly like a downloaded Hugging Face folder.",
        "",
        "## Training",
        "",
        f"- Command: `{train.get('command', 'python -m workbench.toy.train')}`",
        f"- Architecture: Qwen2, d_model {cfg['hidden_size']}, {cfg['n_layers']} layers, {cfg['n_heads']} heads, "
        f"MLP {cfg['intermediate_size']}, {train.get('n_params', '?')} parameters, tied embeddings",
        f"- Data: generated on the fly, seed {cfg['seed']} (batch of step s drawn with seed "
        f"{cfg['seed']}·1000003+s); {task['n_inputs']} inputs, {task['min_statements']}–{task['max_statements']} "
        f"statements, ops `{task['ops']}`, mod {task['modulus']}; behaviours p_error {task['p_error']}, "
        f"p_correct {task['p_correct']}, p_check {task['p_check']}; "
        f"{_pct(task.get('shared_tens_share', 0.0))} of problems with one shared tens digit in their inputs",
        f"- Optimiser: AdamW lr {cfg['lr']} ({cfg['warmup']} warm-up steps, cosine to 10%), batch {cfg['batch_size']}, "
        f"grad clip {cfg['grad_clip']}; loss on chain-of-thought tokens only",
        *[
            f"- Then phase {i + 2}: {ph['steps']} steps, lr {ph['lr']} ({ph['warmup']} warm-up, cosine to 10%), "
            + ", ".join(f"{k} {v}" for k, v in ph["task"].items() if v != task.get(k))
            for i, ph in enumerate(phases)
        ],
        f"- Steps: {last.get('step', '?')}; wall time {_total_seconds(train['history'])} s on "
        f"{train.get('machine', '?')}; final chain-of-thought loss (EMA) {last.get('loss_ema', '?')}",
        "",
        "Greedy accuracy on 128 held-out problems during training (a resumed run restarts the clock and "
        "recomputes the cosine schedule over its new step count):",
        "",
        "| step | loss (EMA) | greedy accuracy | seconds into the run |",
        "|---|---|---|---|",
        *[f"| {h['step']} | {h['loss_ema']} | {_pct(h['greedy_acc'])} | {h['elapsed_s']} |" for h in train["history"]],
        "",
    ]
    tries = train.get("earlier_tries") or []
    if tries:
        lines += [
            "## Earlier tries",
            "",
            "Every recipe tried for this model, failures included (greedy final-answer accuracy on held-out problems):",
            "",
            "| recipe | steps | greedy accuracy | what we learned |",
            "|---|---|---|---|",
            *[f"| {t['recipe']} | {t['steps']} | {t['accuracy']} | {t['lesson']} |" for t in tries],
            "",
        ]
    ev_path = model_dir / "evaluation.json"
    if ev_path.exists():
        lines += _eval_section(json.loads(ev_path.read_text()))
    else:
        lines += ["## Measured properties", "", "Not measured yet: run `python benchmarks/embedded_model.py`.", ""]
    return atomic_write_text(model_dir / "model_card.md", "\n".join(lines))
