"""Our SAE metrics against plain reference computations on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from workbench.sae.metrics import DeadLatentTracker, RunningFVU, fvu, l0, max_decoder_cosine


def test_fvu_matches_a_hand_computation():
    x = torch.tensor([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])
    x_hat = torch.tensor([[1.0, 1.0], [2.0, 2.0], [2.0, 4.0]])
    # mean (2, 2); total variance 1+4 + 1+0 + 0+4 = 10; squared error 1 + 1 + 0 = 2
    assert math.isclose(fvu(x, x_hat), 0.2, rel_tol=1e-12)
    assert fvu(x, x) == 0.0
    assert math.isclose(fvu(x, x.mean(0).expand_as(x)), 1.0, rel_tol=1e-12)


def test_running_fvu_equals_fvu_of_the_whole_set():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 5, generator=gen) + 3
    x_hat = x + 0.3 * torch.randn(50, 5, generator=gen)
    run = RunningFVU()
    for part in (slice(0, 7), slice(7, 31), slice(31, 50)):
        run.update(x[part], x_hat[part])
    assert math.isclose(run.value, fvu(x, x_hat), rel_tol=1e-9)
    ref = float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert math.isclose(run.value, ref, rel_tol=1e-5)


def test_l0_counts_nonzero_latents_per_row():
    acts = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 1.0, 0.5]])
    assert l0(acts) == (2 + 0 + 4) / 3


def test_dead_latents_are_those_silent_for_a_whole_window():
    tracker = DeadLatentTracker.create(d_sae=3, window=4)
    tracker.update(torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # latent 0 fires; 2 samples seen
    assert tracker.dead_fraction == 0.0  # nobody silent for 4 samples yet
    tracker.update(torch.tensor([[0.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))  # latent 1 fires in the last sample
    assert tracker.since_fired.tolist() == [2, 0, 4]
    assert tracker.dead.tolist() == [False, False, True] and math.isclose(tracker.dead_fraction, 1 / 3)


def test_max_decoder_cosine_matches_brute_force():
    w = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 3.0, 0.0], [0.0, 0.0, -1.0]])
    ref = max(
        float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
        for i, a in enumerate(w.double().numpy())
        for j, b in enumerate(w.double().numpy())
        if i != j
    )
    assert math.isclose(max_decoder_cosine(w), ref, rel_tol=1e-12) and math.isclose(ref, 1 / math.sqrt(2))
