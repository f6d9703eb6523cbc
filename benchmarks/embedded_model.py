"""Benchmark: the embedded model's measured properties, written to its model card.

    python benchmarks/embedded_model.py [--n 500] [--model PATH]

Greedy final-answer accuracy in distribution and on longer programs (out of distribution); with sampling
at temperature 1: fresh wrong-step rate, share of wrong steps followed by a ``wait`` correction, ``check``
rate. Writes ``evaluation.json`` and ``model_card.md`` beside the weights and
``benchmarks/results/embedded_model.md``. Batched generation with the KV cache: minutes on 2 CPU cores.
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


def task_from_training(model_dir: Path) -> TaskConfig:
    task = json.loads((model_dir / "training.json").read_text())["config"]["task"]
    return TaskConfig(**task)


def ood_task(task: TaskConfig) -> TaskConfig:
    """Programs longer than any seen in training: from max+2 to max+4 statements."""
    return TaskConfig(
        n_inputs=task.n_inputs,
        min_statements=task.max_statements + 2,
        max_statements=task.max_statements + 4,
        ops=task.ops,
        modulus=task.modulus,
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--n", type=int, default=500, help="problems per set (500)")
    parser.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    args = parser.parse_args(argv)
    t0 = time.time()
    model = load_model(args.model)
    model_dir = model.resolved.path
    task = task_from_training(model_dir)
    ood = ood_task(task)
    run = dict(model=model.hf_model, tokenizer=model.tokenizer)
    ev = {
        "greedy_in_distribution": evaluate(**run, problems=heldout_problems(task, args.n)).as_dict(),
        "greedy_out_of_distribution": evaluate(**run, problems=heldout_problems(ood, args.n)).as_dict(),
        "sampled_t1": evaluate(
            **run, problems=heldout_problems(task, args.n, seed=20_000), temperature=1.0, seed=1
        ).as_dict(),
    }
    machine = (
        torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    )
    ev["meta"] = {
        "date": datetime.date.today().isoformat(),
        "machine": machine,
        "seconds": round(time.time() - t0),
        "command": "python benchmarks/embedded_model.py" + (f" --n {args.n}" if args.n != 500 else ""),
        "id_task": f"{task.min_statements}-{task.max_statements} statements",
        "ood_task": f"{ood.min_statements}-{ood.max_statements} statements",
        "weights_sha256": model.weights_sha256,
    }
    write_json_atomic(model_dir / "evaluation.json", ev)
    card = write_model_card(model_dir)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("# Embedded model evaluation\n\n" + card.read_text().split("## Measured properties", 1)[1])
    print(json.dumps(ev, indent=2))
    return ev


if __name__ == "__main__":
    main()
