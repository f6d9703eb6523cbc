"""Fixtures for step-SAE tests: small synthetic stores with planted sparse structure (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.store import KeySpec, StoreWriter

D = 16
HOOKS = ("blocks.0.hook_resid_post", "blocks.1.hook_resid_post")
KINDS = ("compute", "wait", "check")


def write_store(
    root: Path, *, n_traces: int = 48, steps: int = 6, n_atoms: int = 24, nan_steps: int = 0, seed: int = 0
) -> Path:
    """A store whose step vectors are sparse sums of ``n_atoms`` random directions (2-3 per step).

    Step kind ``wait`` always contains atom 0 and ``check`` atom 1 at twice the typical size (the other atoms
    are random, sizes 0.5-1.5), so a good
    SAE has a latent separating each kind. Layer 1 is layer 0 plus noise. ``nan_steps`` rows become NaN.
    """
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n_atoms, D, generator=gen), dim=-1) * 4
    rows, vecs = [], []
    for t in range(n_traces):
        for s in range(steps):
            kind = KINDS[rng.choice(3, p=[0.6, 0.2, 0.2])]
            active = list(rng.choice(np.arange(2, n_atoms), size=2, replace=False))
            active += [0] if kind == "wait" else [1] if kind == "check" else []
            mags = torch.rand(len(active), generator=gen) + 0.5
            mags[2:] = 2.0  # the behaviour direction is strong
            vecs.append((mags[:, None] * atoms[active]).sum(0) + 0.05 * torch.randn(D, generator=gen))
            rows.append(
                {
                    "trace_id": f"p{t // 2}/t{t}", "problem_id": f"p{t // 2}", "step_index": s,
                    "text": f"{kind} step {s} of t{t}", "label_kind": kind,
                    "local_row": len(vecs) - 1, "local_token_row": -1, "n_token_rows": 0,
                }
            )  # fmt: skip
    x0 = torch.stack(vecs)
    if nan_steps:
        x0[torch.arange(nan_steps) * 7] = torch.nan
    x1 = x0 + 0.1 * torch.randn(x0.shape, generator=gen)
    keys = {f"{h}/boundary": KeySpec(rows="step", shape=(D,), dtype="float32") for h in HOOKS}
    StoreWriter.create(root, keys=keys, fingerprint={"model": "synthetic"}, info={"model": {"model": "synthetic"}})
    w = StoreWriter(root)
    df = pd.DataFrame(rows)
    half = len(df) // 2  # two shards, so batches cross shard boundaries
    for part, lo, hi in ((df.iloc[:half], 0, half), (df.iloc[half:], half, len(df))):
        part = part.assign(local_row=part.local_row - lo)
        w.write_shard(part, {f"{HOOKS[0]}/boundary": x0[lo:hi], f"{HOOKS[1]}/boundary": x1[lo:hi]})
    w.refresh_manifest()
    return root


@pytest.fixture(scope="session")
def store_path(tmp_path_factory) -> Path:
    """288 steps, d_model 16, two hooks, kinds compute/wait/check."""
    return write_store(tmp_path_factory.mktemp("sae") / "store")
