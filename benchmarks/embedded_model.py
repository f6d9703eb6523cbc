"""Benchmark: the embedded model's measured properties, written to its model card.

    python benchmarks/embedded_model.py [--n 500] [--model PATH] [--ood-extra 1 2] [--write]

Greedy final-answer accuracy in distribution and on longer programs (out of distribution); with sampling
at temperature 1: fresh wrong-step rate, share of wrong steps followed by a ``wait`` correction, ``check``
rate; and a linear probe per layer for the model's own fresh errors (does it represent its mistakes?).
Prints the numbers; with ``--write`` also writes ``evaluation.json`` and ``model_card.md`` beside the
weights and ``benchmarks/results/embedded_model.md``. Batched generation with the KV cache: minutes on
2 CPU cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from workbench.models import load_model
from workbench.toy.card import write_json_atomic, write_model_card
from workbench.toy.evaluate import evaluate, heldout_problems
from workbench.toy.task import TaskConfig

RESULTS = Path(__file__).parent / "results" / "embedded_model.md"
OOD_EXTRA = (1, 1)
"""Out-of-distribution programs are this many statements longer than the longest in training. One past
the training range: the model has learned that programs end after at most five statements, so it answers
early or skips a statement (its own wrong values); at +2 and beyond most failures also contain a line for
the wrong variable (which the checker counts as garbled), and then the drop measures text collapse rather
than reasoning errors."""


def fresh_error_probe(model, task: TaskConfig, n: int, *, seed: int = 30_000) -> dict:
    """Held-out ROC-AUC per layer of a logistic probe for fresh errors on the model's own sampled steps.

    Samples ``n`` problems at temperature 1, captures each compute step's boundary vector at every
    layer's ``hook_resid_post``, splits by problem (70/30), standardises on train only, and fits
    scikit-learn's ``LogisticRegression`` per layer. The label is the checker's: a compute step whose
    value does not follow from what the trace stated before (``logical`` is False).
    """
    import tempfile

    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench.capture import CaptureConfig, capture
    from workbench.labels import generate_toy_traces
    from workbench.store import open_store
    from workbench.traces import GenerationConfig

    problems = heldout_problems(task, n, seed=seed)
    traces = generate_toy_traces(model, problems, config=GenerationConfig(temperature=1.0, max_new_tokens=200))
    fresh = {(t.trace_id, s.index): not s.labels["logical"] for t in traces for s in t.steps if s.kind == "compute"}
    with tempfile.TemporaryDirectory() as tmp:
        capture(traces, model, Path(tmp) / "store", CaptureConfig(poolings=("boundary",), progress=False))
        store = open_store(Path(tmp) / "store")
        index = store.index
        keep = [(tid, int(si)) in fresh for tid, si in zip(index["trace_id"], index["step_index"], strict=True)]
        index = index[keep]
        y = [fresh[(tid, int(si))] for tid, si in zip(index["trace_id"], index["step_index"], strict=True)]
        problem_ids = sorted(set(index["problem_id"]))
        test_ids = set(problem_ids[int(0.7 * len(problem_ids)) :])
        is_test = index["problem_id"].isin(test_ids).to_numpy()
        import numpy as np

        y = np.asarray(y)
        out = {}
        for layer in range(model.n_layers):
            hook = f"blocks.{layer}.hook_resid_post"
            x = store.tensors(hook, "boundary", index).float().numpy()
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
            clf.fit(x[~is_test], y[~is_test])
            out[hook] = round(float(roc_auc_score(y[is_test], clf.decision_function(x[is_test]))), 4)
    return {
        "pooling": "boundary",
        "roc_auc_by_layer": out,
        "train_problems": len(problem_ids) - len(test_ids),
        "test_problems": len(test_ids),
        "train_steps": int((~is_test).sum()),
        "test_steps": int(is_test.sum()),
        "test_positives": int(y[is_test].sum()),
    }


def task_from_training(model_dir: Path) -> TaskConfig:
    task = json.loads((model_dir / "training.json").read_text())["config"]["task"]
    return TaskConfig(**task)


def ood_task(task: TaskConfig, extra: tuple[int, int] = OOD_EXTRA) -> TaskConfig:
    """Programs longer than any seen in training: from max+extra[0] to max+extra[1] statements."""
    return TaskConfig(
        n_inputs=task.n_inputs,
        min_statements=task.max_statements + extra[0],
        max_statements=task.max_statements + extra[1],
        ops=task.ops,
        modulus=task.modulus,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=500, help="problems per set (500)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    parser.add_argument("--ood-extra", type=int, nargs=2, default=OOD_EXTRA, help=f"OOD lengths {OOD_EXTRA}")
    parser.add_argument("--probe-n", type=int, default=600, help="problems for the fresh-error probe (600; 0: skip)")
    parser.add_argument("--write", action="store_true", help="write evaluation.json, the card and the results file")
    args = parser.parse_args(argv)
    t0 = time.time()
    model = load_model(args.model)
    model_dir = model.resolved.path
    task = task_from_training(model_dir)
    ood = ood_task(task, tuple(args.ood_extra))
    run = dict(model=model.hf_model, tokenizer=model.tokenizer)
    ev = {
        "greedy_in_distribution": evaluate(**run, problems=heldout_problems(task, args.n)).as_dict(),
        "greedy_out_of_distribution": evaluate(**run, problems=heldout_problems(ood, args.n)).as_dict(),
        "sampled_t1": evaluate(
            **run, problems=heldout_problems(task, args.n, seed=20_000), temperature=1.0, seed=1
        ).as_dict(),
    }
    if args.probe_n:
        ev["fresh_error_probe"] = fresh_error_probe(model, task, args.probe_n)
    machine = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    ev["meta"] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine,
        "seconds": round(time.time() - t0),
        "command": "python benchmarks/embedded_model.py --write" + (f" --n {args.n}" if args.n != 500 else ""),
        "id_task": f"{task.min_statements}-{task.max_statements} statements",
        "ood_task": f"{ood.min_statements}-{ood.max_statements} statements",
        "weights_sha256": model.weights_sha256,
    }
    print(json.dumps(ev, indent=2))
    if args.write:
        write_json_atomic(model_dir / "evaluation.json", ev)
        card = write_model_card(model_dir)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# Embedded model evaluation\n\n" + card.read_text().split("## Measured properties", 1)[1])
    return ev


if __name__ == "__main__":
    main()
