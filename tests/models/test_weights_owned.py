"""A loaded model keeps its weights when the folder's weight file is overwritten in place."""

import shutil

import torch

from workbench.models import embedded_model_dir, load_model


def test_overwriting_the_weight_file_does_not_change_a_loaded_model(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(embedded_model_dir(), folder)
    model = load_model(str(folder), device="cpu")
    before = {k: v.clone() for k, v in model.hf_model.state_dict().items()}
    with open(folder / "model.safetensors", "r+b") as f:  # what `cp new old` does to a mapped file
        f.seek(-65536, 2)
        f.write(b"\x11" * 65536)
    after = model.hf_model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
