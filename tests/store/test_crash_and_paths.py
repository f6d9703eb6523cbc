"""Store safety: crash leftovers are removed by whoever owns them; bad output paths and files are named.

A kill can land between writing a temporary file and renaming it; the ``die_on_replace`` fixture
simulates it with an ``os.replace`` that dies for the chosen target.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.store.helpers import Killed, leftovers, new_store
from tests.store.test_store import FINGERPRINT, KEYS, _shard
from workbench.store import StoreWriter, open_store
from workbench.store import format as fmt


def test_reopening_removes_a_manifest_temp_left_by_a_kill(tmp_path, die_on_replace):
    root = tmp_path / "store"
    writer = new_store(root)
    writer.write_shard(*_shard(["p1/a"]))
    die_on_replace(fmt.MANIFEST)
    with pytest.raises(Killed):
        writer.refresh_manifest()
    assert any(name.startswith(".tmp-manifest.json") for name in leftovers(root)), leftovers(root)
    StoreWriter(root).refresh_manifest()  # the resumed run
    assert leftovers(root) == []
    assert open_store(root).manifest["counts"]["steps"] == 3


def test_each_rank_removes_only_its_own_temporaries(tmp_path, die_on_replace):
    root = tmp_path / "store"
    new_store(root)
    rank1 = StoreWriter(root, rank=1)
    die_on_replace("r001-000000")
    with pytest.raises(Killed):
        rank1.write_shard(*_shard(["p2/b"]))  # dies before its shard is renamed
    die_on_replace(fmt.MANIFEST)
    with pytest.raises(Killed):
        rank1.refresh_manifest()
    mine = leftovers(root)
    assert any(n.startswith("shards/.tmp-r001") for n in mine) and any(n.startswith(".tmp-manifest") for n in mine)
    StoreWriter(root, rank=0)  # another rank may still be writing these: left alone
    assert leftovers(root) == mine
    StoreWriter(root, rank=1)
    assert leftovers(root) == []


def test_a_label_set_cleans_up_after_its_own_crash(tmp_path, die_on_replace):
    root = tmp_path / "store"
    writer = new_store(root)
    writer.write_shard(*_shard(["p1/a"]))
    writer.refresh_manifest()
    labels = pd.DataFrame({"trace_id": ["p1/a"] * 3, "step_index": [0, 1, 2], "score": [0.1, 0.2, 0.3]})
    die_on_replace("score.parquet")
    with pytest.raises(Killed):
        open_store(root).add_labels(labels, name="score")
    assert leftovers(root)
    assert open_store(root).add_labels(labels, name="score")["score"].tolist() == [0.1, 0.2, 0.3]
    assert leftovers(root) == []


def test_a_folder_holding_other_files_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "notes"
    root.mkdir()
    (root / "draft.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a step store") as err:
        StoreWriter.create(root, keys=KEYS, fingerprint=FINGERPRINT)
    assert str(root) in str(err.value) and "draft.txt" in str(err.value)
    assert sorted(p.name for p in root.iterdir()) == ["draft.txt"]


def test_an_empty_folder_or_one_left_by_an_interrupted_create_is_fine(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    StoreWriter.create(empty, keys=KEYS, fingerprint=FINGERPRINT)
    half = tmp_path / "half"
    (half / fmt.SHARDS).mkdir(parents=True)  # a create killed before its manifest landed
    (half / ".tmp-manifest.json.r000-123").write_text("{")
    StoreWriter.create(half, keys=KEYS, fingerprint=FINGERPRINT)
    assert open_store(half).manifest["counts"]["steps"] == 0


def test_an_output_path_that_is_a_file_gets_a_clear_error(tmp_path):
    path = tmp_path / "store.json"
    path.write_text("{}")
    with pytest.raises(NotADirectoryError, match="is a file"):
        StoreWriter.create(path, keys=KEYS, fingerprint=FINGERPRINT)
    with pytest.raises(NotADirectoryError, match="is a file"):
        open_store(path)
    assert path.read_text() == "{}"


@pytest.mark.parametrize("keep", [5, 60, -8])
def test_a_truncated_tensor_file_is_named(tmp_path, keep):
    root = tmp_path / "store"
    writer = new_store(root)
    writer.write_shard(*_shard(["p1/a", "p1/b"]))
    path = next(root.glob("shards/r000-000000/blocks.0.hook_resid_post__mean.safetensors"))
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    with pytest.raises(ValueError, match="truncated or corrupted") as err:
        open_store(root).tensors("blocks.0.hook_resid_post", "mean")
    assert str(path) in str(err.value)
