"""A store is readable by anyone: the manifest documents the layout, and pandas + pyarrow + safetensors
(with numpy) read every key, bfloat16 included, in a process where neither workbench nor torch imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import torch

from tests.store.helpers import new_store
from tests.store.test_store import KEYS, _shard
from workbench.store import open_store

# Follows only manifest["layout"]; the first line makes any import of workbench or torch fail.
PLAIN_READER = textwrap.dedent(
    """
    import sys; sys.modules["workbench"] = None; sys.modules["torch"] = None
    import json, os
    import numpy as np, pandas as pd, pyarrow.parquet as pq
    from safetensors import safe_open

    root, out = sys.argv[1], sys.argv[2]
    manifest = json.load(open(os.path.join(root, "manifest.json")))
    layout = manifest["layout"]
    shards_dir = os.path.join(root, layout["shards_dir"])
    shards = sorted(d for d in os.listdir(shards_dir) if not d.startswith(layout["temporary_prefix"]))

    def read(path):
        with safe_open(path, framework="np") as f:
            sl = f.get_slice(layout["tensor_name"])
            if sl.get_dtype() != "BF16":
                return f.get_tensor(layout["tensor_name"])
        raw = open(path, "rb").read()  # the safetensors layout: u64 header length, JSON header, data
        n = int.from_bytes(raw[:8], "little")
        info = json.loads(raw[8 : 8 + n])[layout["tensor_name"]]
        begin, end = info["data_offsets"]
        bits = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype="<u2").reshape(info["shape"])
        return (bits.astype(np.uint32) << 16).view(np.float32)  # bfloat16 is float32's top half

    index = pd.concat(
        [pq.read_table(os.path.join(shards_dir, s, layout["index_file"])).to_pandas().assign(shard=s) for s in shards],
        ignore_index=True,
    )
    arrays = {}
    for key, spec in manifest["keys"].items():
        parts = [read(os.path.join(shards_dir, s, layout["files"][key])) for s in shards]
        arrays[key] = np.concatenate(parts)
        assert str(arrays[key].dtype) == ("float32" if spec["dtype"] == "bfloat16" else spec["dtype"]), key
    # a step's row in a step key: its local_row plus the step rows of the shards before its own
    per_shard = index[index.local_row >= 0].groupby("shard", sort=False).size().reindex(shards, fill_value=0)
    offset = dict(zip(shards, np.concatenate([[0], np.cumsum(per_shard.to_numpy())[:-1]])))
    index["row"] = np.where(index.local_row >= 0, index.local_row + index.shard.map(offset), -1)
    np.savez(out, rows=index.row.to_numpy(), text=index.text.to_numpy().astype(str), **arrays)
    """
)


def test_a_store_reads_with_only_pandas_pyarrow_and_safetensors(tmp_path):
    root = tmp_path / "store"
    w0 = new_store(root)
    w0.write_shard(*_shard(["p1/a", "p1/b"], seed=1))
    w0.write_shard(*_shard(["p2/c", "p4/e"], missing={("p4/e", 1)}, seed=2))
    w0.refresh_manifest()
    out = tmp_path / "plain.npz"
    proc = subprocess.run([sys.executable, "-c", PLAIN_READER, str(root), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = np.load(out)
    store = open_store(root)
    assert plain["text"].tolist() == store.index.text.tolist() and (plain["rows"] == store.index.row).all()
    for key in KEYS:
        want = store.read(key).float().numpy()
        np.testing.assert_array_equal(plain[key], want, err_msg=key)  # bf16 → f32 is exact
    assert store.key_specs["blocks.0.hook_resid_post/boundary"].dtype == "bfloat16"


def test_the_manifest_documents_its_own_layout(tmp_path):
    root = tmp_path / "store"
    writer = new_store(root)
    writer.write_shard(*_shard(["p1/a"]))
    layout = writer.refresh_manifest()["layout"]
    shard = root / layout["shards_dir"] / "r000-000000"
    assert (shard / layout["index_file"]).is_file()
    assert all((shard / layout["files"][k]).is_file() for k in KEYS)
    for topic in ("shard_order", "row_lookup", "token_rows", "bfloat16", "labels", "temporary_prefix"):
        assert isinstance(layout[topic], str) and layout[topic], topic
    assert torch.equal(open_store(root).read("tokens/entropy"), torch.arange(6, dtype=torch.float32))
