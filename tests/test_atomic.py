"""Atomic writes (workbench.atomic): a file appears complete or not at all, and no temporary file is left."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from workbench.atomic import atomic_path, atomic_write_json, atomic_write_table


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "deep" / "out.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError, match="half way"), atomic_path(target) as tmp:
        tmp.write_text('{"v": ')
        raise RuntimeError("half way")
    assert json.loads(target.read_text()) == {"v": 1}
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_tables_take_their_format_from_the_suffix(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    atomic_write_table(frame, tmp_path / "t.parquet")
    atomic_write_table(frame, tmp_path / "t.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.parquet"]
