"""The shipped embedded model: loads with no argument, solves held-out problems as its card says."""

import json
import math

from workbench.models import embedded_model_dir
from workbench.toy import TaskConfig
from workbench.toy.evaluate import evaluate, heldout_problems


def card():
    return json.loads((embedded_model_dir() / "evaluation.json").read_text())


def test_embedded_model_loads_by_default(embedded):
    assert embedded.resolved.source == "embedded"
    assert embedded.config.model_type == "qwen2" and embedded.tokenizer.is_fast
    assert embedded.provenance()["weights_sha256"] == card()["meta"]["weights_sha256"]


def test_heldout_batch_accuracy_matches_the_card(embedded):
    task = TaskConfig(**json.loads((embedded_model_dir() / "training.json").read_text())["config"]["task"])
    n = 96
    stats = evaluate(embedded.hf_model, embedded.tokenizer, heldout_problems(task, n, seed=31_337), progress=False)
    expected = card()["greedy_in_distribution"]["accuracy"]
    tolerance = 3 * math.sqrt(max(expected * (1 - expected), 0.01) / n)  # three binomial standard errors
    assert abs(stats.accuracy - expected) <= tolerance, (stats.accuracy, expected)


def test_card_meets_the_required_properties():
    ev = card()
    assert ev["greedy_in_distribution"]["accuracy"] >= 0.95
    sampled = ev["sampled_t1"]
    assert 0.03 <= sampled["fresh_error_rate"] <= 0.25
    assert sampled["corrected_share"] >= 0.40
    assert sampled["check_rate"] > 0
    ood = ev["greedy_out_of_distribution"]
    assert ood["accuracy"] < ev["greedy_in_distribution"]["accuracy"] - 0.05
    assert ood["failures_garbled"] < 0.5  # most OOD failures are the model's own wrong values
    probe = ev["fresh_error_probe"]["roc_auc_by_layer"]
    assert max(probe.values()) > 0.75  # the model represents its own fresh errors somewhere
