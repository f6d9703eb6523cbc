"""The live-scoring overhead benchmark's timing method: generate calls that take turns token by token.

``benchmarks/live_scoring.py`` times plain and live generation as threads that hand a turn to each other
after every sampled token; its numbers are only comparable if every call samples exactly what it would
sample alone (the torch random state is swapped at each hand-over) and the turns really alternate.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import StoppingCriteriaList

from workbench.traces.generate import left_pad

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "live_scoring.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("live_scoring_bench", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_turns_alternate_and_each_call_samples_what_it_would_alone(bench, embedded):
    tok = embedded.tokenizer
    batch = left_pad(tok(["x = 3\n", "y = 1 + 2\n"], add_special_tokens=False)["input_ids"], tok.pad_token_id)
    kwargs = {"do_sample": True, "temperature": 1.0, "max_new_tokens": 12, "use_cache": True}

    def sample(model, criteria, seed):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return model.generate(*batch, stopping_criteria=StoppingCriteriaList(criteria), **kwargs)

    alone = {seed: sample(embedded, [], seed) for seed in (1, 2)}
    assert not torch.equal(alone[1], alone[2])  # different seeds, different samples: the check below can fail
    models = [copy.deepcopy(embedded) for _ in range(2)]
    outputs, order = {}, []

    class Logged:
        def __init__(self, i, hand_on):
            self.i, self.hand_on = i, hand_on

        def __call__(self, input_ids, scores=None, **kw):
            order.append(self.i)
            return self.hand_on(input_ids)

    def call(i, seed):
        def run(hand_on):
            outputs[seed] = sample(models[i], [Logged(i, hand_on)], seed)

        return run

    spent = bench.Turns(2).run([call(0, 1), call(1, 2)])
    assert torch.equal(outputs[1], alone[1]) and torch.equal(outputs[2], alone[2])
    assert all(t > 0 for t in spent)
    n = min(order.count(0), order.count(1))
    assert n >= 2 and order[: 2 * n] == [0, 1] * n  # one token each, in turn


def test_an_error_in_one_call_lets_the_others_finish_and_is_raised(bench):
    finished = []

    def fails(hand_on):
        raise ValueError("boom")

    def works(hand_on):
        for _ in range(3):
            hand_on(torch.zeros(1, 1, dtype=torch.long))
        finished.append(True)

    with pytest.raises(ValueError, match="boom"):
        bench.Turns(2).run([fails, works])
    assert finished == [True]


def test_geometric_mean_interval(bench):
    ratio, lo, hi = bench._ci([1.0, 1.1, 1.21])
    assert ratio == pytest.approx(1.1) and lo < 1.0 < 1.21 < hi
