"""The step-activation store on synthetic data: atomic shards, memory-mapped reads, batches, splits, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from workbench.store import KeySpec, StoreMismatchError, StoreWriter, open_store
from workbench.store.format import TensorFile

D = 4
KEYS = {
    "blocks.0.hook_resid_post/mean": KeySpec(rows="step", shape=(D,), dtype="float32"),
    "blocks.0.hook_resid_post/boundary": KeySpec(rows="step", shape=(D,), dtype="bfloat16"),
    "tokens/entropy": KeySpec(rows="token", shape=(), dtype="float32"),
}
FINGERPRINT = {"model": "m", "hooks": ["blocks.0.hook_resid_post"]}


def _shard(trace_ids: list[str], steps: int = 3, *, missing: set[tuple[str, int]] = frozenset(), seed: int = 0):
    """An index part and tensors for ``trace_ids`` (``missing`` steps have no vectors); rows carry their step id."""
    rows, n_vec, n_tok = [], 0, 0
    for t in trace_ids:
        for s in range(steps):
            has = (t, s) not in missing
            rows.append(
                {
                    "trace_id": t, "problem_id": t.split("/")[0], "step_index": s, "text": f"{t}:{s}",
                    "local_row": n_vec if has else -1, "local_token_row": n_tok if has else -1,
                    "n_token_rows": s + 1 if has else 0,
                }
            )  # fmt: skip
            n_vec += has
            n_tok += (s + 1) if has else 0
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(n_vec, D, generator=gen)
    tensors = {
        "blocks.0.hook_resid_post/mean": mean,
        "blocks.0.hook_resid_post/boundary": mean.to(torch.bfloat16),
        "tokens/entropy": torch.arange(n_tok, dtype=torch.float32) + 1000 * seed,
    }
    return pd.DataFrame(rows), tensors


@pytest.fixture
def store_dir(tmp_path):
    """Two ranks, three shards: r000-000000 (a, b), r000-000001 (c), r001-000000 (d, e with a missing step)."""
    root = tmp_path / "store"
    StoreWriter.create(root, keys=KEYS, fingerprint=FINGERPRINT, info={"note": "test"})
    w0, w1 = StoreWriter(root, rank=0), StoreWriter(root, rank=1)
    parts = {}
    parts["r001-000000"] = _shard(["p3/d", "p4/e"], missing={("p4/e", 1)}, seed=3)
    w1.write_shard(*parts["r001-000000"])
    parts["r000-000000"] = _shard(["p1/a", "p1/b"], seed=1)
    w0.write_shard(*parts["r000-000000"])
    parts["r000-000001"] = _shard(["p2/c"], seed=2)
    w0.write_shard(*parts["r000-000001"])
    w0.refresh_manifest()
    return root, parts


def test_shards_of_all_ranks_open_as_one_table(store_dir):
    root, parts = store_dir
    store = open_store(root)
    order = ["r000-000000", "r000-000001", "r001-000000"]
    assert [s.name for s in store.shards] == order
    df = store.index
    assert df.trace_id.tolist() == [t for n in order for t in parts[n][0].trace_id]
    assert (df.row[df.row >= 0] == np.arange(14)).all() and df.row[df.text == "p4/e:1"].item() == -1
    want = torch.cat([parts[n][1]["blocks.0.hook_resid_post/mean"] for n in order])
    assert torch.equal(store.tensors("blocks.0.hook_resid_post", "mean"), want)
    bf = store.tensors("blocks.0.hook_resid_post", "boundary")
    assert bf.dtype == torch.bfloat16 and torch.equal(bf, want.to(torch.bfloat16))
    counts = {"shards": 3, "traces": 5, "steps": 15, "rows": 14, "tokens": 28, "traces_without_steps": 0}
    assert store.manifest["counts"] == counts
    assert store.manifest["note"] == "test" and store.hooks == ["blocks.0.hook_resid_post"]
    assert isinstance(TensorFile.open(store.shards[0] / "blocks.0.hook_resid_post__mean.safetensors").array, np.memmap)


def test_selected_rows_come_back_in_the_order_asked_across_shards(store_dir):
    store = open_store(store_dir[0])
    df = store.index
    sel = df[df.row >= 0].sample(frac=1.0, random_state=0)  # shuffled, spanning every shard
    full = store.tensors("blocks.0.hook_resid_post", "mean")
    assert torch.equal(store.tensors("blocks.0.hook_resid_post", "mean", sel), full[sel.row.tolist()])
    assert torch.equal(store.tensors("blocks.0.hook_resid_post", "mean", [13, 0, 5]), full[[13, 0, 5]])
    with pytest.raises(ValueError, match="no vectors"):
        store.tensors("blocks.0.hook_resid_post", "mean", df)
    with pytest.raises(KeyError, match="keys"):
        store.tensors("blocks.9.hook_resid_post", "mean")


def test_step_tokens_follow_token_rows(store_dir):
    store = open_store(store_dir[0])
    df = store.index
    steps = df[(df.row >= 0) & (df.trace_id == "p2/c")]
    ent = store.step_tokens("entropy", steps)
    assert [len(e) for e in ent] == [1, 2, 3]
    assert ent[2].tolist() == [2003.0, 2004.0, 2005.0]  # shard seed 2, local token rows 3..5


def test_iter_batches_covers_every_row_once_per_epoch_and_is_seeded(store_dir):
    store = open_store(store_dir[0])
    full = store.tensors("blocks.0.hook_resid_post", "mean")
    batches = list(store.iter_batches("blocks.0.hook_resid_post", 4, shuffle=True, seed=1, pooling="mean"))
    assert [b.shape for b in batches] == [(4, D)] * 3 + [(2, D)]
    got = torch.cat(batches)
    assert not torch.equal(got, full), "shuffle=True should change the order"
    assert torch.equal(got[torch.argsort(got[:, 0])], full[torch.argsort(full[:, 0])])
    again = torch.cat(list(store.iter_batches("blocks.0.hook_resid_post", 4, True, 1, pooling="mean")))
    other = torch.cat(list(store.iter_batches("blocks.0.hook_resid_post", 4, True, 2, pooling="mean")))
    assert torch.equal(got, again) and not torch.equal(got, other)
    plain = torch.cat(list(store.iter_batches("blocks.0.hook_resid_post", 5, shuffle=False, pooling="mean")))
    assert torch.equal(plain, full)
    dropped = list(store.iter_batches("blocks.0.hook_resid_post", 4, pooling="mean", drop_last=True))
    assert len(dropped) == 3


def test_iter_batches_is_an_endless_iterator_for_trainers(store_dir):
    store = open_store(store_dir[0])
    it = store.iter_batches("blocks.0.hook_resid_post", 8, pooling="boundary", epochs=None)
    drawn = [next(it) for _ in range(10)]  # 80 rows from 14: a trainer's fixed sample count
    assert all(b.shape == (8, D) or b.shape == (6, D) for b in drawn)
    assert all(b.dtype == torch.float32 for b in drawn)
    sub = store.index[store.index.trace_id == "p2/c"]
    only = torch.cat(list(store.iter_batches("blocks.0.hook_resid_post", 2, pooling="mean", rows=sub)))
    want = store.tensors("blocks.0.hook_resid_post", "mean", sub)
    assert torch.equal(only[torch.argsort(only[:, 0])], want[torch.argsort(want[:, 0])])
    with pytest.raises(ValueError, match="batch_size"):
        store.iter_batches("blocks.0.hook_resid_post", 0)


def test_splits_are_by_problem_deterministic_and_stable_when_data_grows(store_dir):
    root, _ = store_dir
    store = open_store(root)
    splits = store.split({"train": 0.5, "test": 0.5}, seed=3)
    assert sum(len(s) for s in splits.values()) == len(store.index)
    problems = [set(s.problem_id) for s in splits.values()]
    assert not problems[0] & problems[1]
    assert {k: v.index.tolist() for k, v in store.split({"train": 0.5, "test": 0.5}, seed=3).items()} == {
        k: v.index.tolist() for k, v in splits.items()
    }
    StoreWriter(root, rank=0).write_shard(*_shard([f"q{i}/x" for i in range(20)], seed=9))
    grown = open_store(root).split({"train": 0.5, "test": 0.5}, seed=3)
    for name in splits:
        assert set(splits[name].problem_id) <= set(grown[name].problem_id)
    with pytest.raises(ValueError, match="sum to 1"):
        store.split({"train": 0.5})


def test_labels_are_added_as_columns_without_touching_tensors(store_dir):
    root, _ = store_dir
    store = open_store(root)
    files = {p: p.read_bytes() for p in root.glob("shards/*/*.safetensors")}
    labels = pd.DataFrame({"trace_id": ["p1/a", "p3/d"], "step_index": [0, 2], "reflection": [True, False]})
    df = store.add_labels(labels, name="judge")
    assert df.set_index("text").loc[["p1/a:0", "p3/d:2"], "reflection"].tolist() == [True, False]
    assert df.reflection.isna().sum() == len(df) - 2 and len(df) == 15
    assert open_store(root).index.reflection.notna().sum() == 2  # persisted
    assert {p: p.read_bytes() for p in root.glob("shards/*/*.safetensors")} == files
    with pytest.raises(FileExistsError):
        store.add_labels(labels, name="judge")
    store.add_labels(labels.assign(reflection=[False, False]), name="judge", overwrite=True)
    assert not open_store(root).index.reflection.fillna(False).any()
    with pytest.raises(ValueError, match="already exist"):
        store.add_labels(labels.rename(columns={"reflection": "text"}), name="other")
    with pytest.raises(ValueError, match="duplicate"):
        store.add_labels(pd.concat([labels, labels]), name="dup")


def test_half_written_shards_are_invisible_and_removed_by_their_rank(store_dir):
    root, _ = store_dir
    junk0 = root / "shards" / ".tmp-r000-000002"
    junk1 = root / "shards" / ".tmp-r001-000001"
    for j in (junk0, junk1):
        j.mkdir()
        (j / "index.parquet").write_bytes(b"half")
    assert len(open_store(root).index) == 15
    writer = StoreWriter(root, rank=0)
    assert not junk0.exists() and junk1.exists()
    info = writer.write_shard(*_shard(["p9/z"]))
    assert info.name == "r000-000002" and len(open_store(root).index) == 18
    assert writer.committed_trace_ids() == {"p1/a", "p1/b", "p2/c", "p3/d", "p4/e", "p9/z"}


def test_reopening_with_another_configuration_is_refused(store_dir):
    root, _ = store_dir
    StoreWriter.create(root, keys=KEYS, fingerprint=FINGERPRINT)  # identical: accepted
    with pytest.raises(StoreMismatchError, match="model: store has 'm', this run has 'n'"):
        StoreWriter.create(root, keys=KEYS, fingerprint={**FINGERPRINT, "model": "n"})
    with pytest.raises(StoreMismatchError, match="keys"):
        StoreWriter.create(
            root, keys={**KEYS, "x/mean": KeySpec(rows="step", shape=(D,), dtype="float32")}, fingerprint=FINGERPRINT
        )


def test_write_shard_checks_columns_shapes_and_dtypes(store_dir):
    writer = StoreWriter(store_dir[0], rank=2)
    index, tensors = _shard(["p5/f"])
    with pytest.raises(ValueError, match="schema wants"):
        writer.write_shard(
            index, {**tensors, "blocks.0.hook_resid_post/mean": tensors["blocks.0.hook_resid_post/mean"][:1]}
        )
    with pytest.raises(ValueError, match="missing the columns"):
        writer.write_shard(index.drop(columns=["local_row"]), tensors)
    with pytest.raises(ValueError, match="keys"):
        writer.write_shard(index, {k: v for k, v in tensors.items() if k != "tokens/entropy"})
    assert not list((store_dir[0] / "shards").glob("*r002*")), "a refused shard must leave nothing behind"


def test_a_shard_without_any_vectors_round_trips(tmp_path):
    root = tmp_path / "s"
    StoreWriter.create(root, keys=KEYS, fingerprint=FINGERPRINT)
    index, tensors = _shard(["p1/a"], missing={("p1/a", 0), ("p1/a", 1), ("p1/a", 2)})
    StoreWriter(root).write_shard(index, tensors)
    store = open_store(root)
    assert len(store.index) == 3 and (store.index.row == -1).all()
    assert store.tensors("blocks.0.hook_resid_post", "mean").shape == (0, D)
