"""Plain step SAEs through sae-lens: save/load round trip, resume, store vs memory, sweeps, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tests.sae.conftest import HOOKS, write_store
from workbench.sae import SAETrainConfig, load_sae, train_layers, train_sae
from workbench.store import open_store

HOOK = HOOKS[0]
SMALL = SAETrainConfig(
    arch="topk", width=32, k=3, batch_size=32, samples=32 * 40, lr=3e-3, metrics_every=10, dead_window=160,
    checkpoint_every=10,
)  # fmt: skip


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu"])
def test_saved_sae_loads_in_sae_lens_and_encodes_identically(store_path, tmp_path, arch):
    import sae_lens

    cfg = replace(SMALL, arch=arch, l1_coefficient=1e-2)
    trained = train_sae(store_path, HOOK, cfg, out=tmp_path / arch, progress=False)
    assert {p.name for p in (tmp_path / arch).iterdir()} == {"cfg.json", "sae_weights.safetensors", "manifest.json"}
    loaded = sae_lens.SAE.load_from_disk(str(tmp_path / arch))
    x = open_store(store_path).tensors(HOOK)
    ours = trained.sae.encode(x)
    assert (ours != 0).any() and torch.equal(loaded.encode(x), ours)
    torch.testing.assert_close(loaded.decode(ours), trained.sae.decode(ours))
    # BatchTopK is saved as a JumpReLU with its learned threshold, as sae-lens does
    assert loaded.cfg.architecture() == {"relu": "standard", "batchtopk": "jumprelu"}.get(arch, arch)
    manifest = json.loads((tmp_path / arch / "manifest.json").read_text())
    assert SAETrainConfig.from_json(manifest["config"]) == cfg
    assert manifest["hook"] == HOOK and manifest["pooling"] == "boundary" and manifest["scaling_factor"] > 0
    assert len(manifest["history"]) == 4 and manifest["history"][-1]["step"] == 40
    assert load_sae(tmp_path / arch).config == cfg


def test_history_has_our_metrics_and_scaling_is_folded(store_path):
    trained = train_sae(store_path, HOOK, SMALL, progress=False)
    h = trained.history
    assert h["step"].tolist() == [10, 20, 30, 40]
    for col in ("fvu", "l0", "dead_fraction", "max_decoder_cosine", "lr", "loss_mse_loss"):
        assert col in h.columns and h[col].notna().all()
    assert (h["l0"] == SMALL.k).all() and h["fvu"].iloc[-1] < h["fvu"].iloc[0]
    # the scaling factor is folded in: raw vectors reconstruct in raw units about as well as in training
    x = open_store(store_path).tensors(HOOK)
    x_hat = trained.sae.decode(trained.sae.encode(x))
    raw_fvu = float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert raw_fvu < 1 and abs(raw_fvu - h["fvu"].iloc[-1]) < 0.1


def _weights(path):
    return load_file(str(path / "sae_weights.safetensors"))


def test_resume_after_a_pause_or_a_crash_equals_an_uninterrupted_run(store_path, tmp_path):
    full = train_sae(store_path, HOOK, SMALL, out=tmp_path / "full", progress=False)

    paused = train_sae(store_path, HOOK, SMALL, out=tmp_path / "paused", progress=False, stop_after=17)
    assert not paused.finished and (tmp_path / "paused" / "checkpoints").is_dir()
    assert not (tmp_path / "paused" / "manifest.json").exists()
    resumed = train_sae(store_path, HOOK, SMALL, out=tmp_path / "paused", progress=False)

    def crash(step, history):
        if step == 30:
            raise KeyboardInterrupt  # the checkpoint of step 30 was not written yet; step 20's survives

    with pytest.raises(KeyboardInterrupt):
        train_sae(store_path, HOOK, SMALL, out=tmp_path / "crashed", progress=False, callback=crash)
    after_crash = train_sae(store_path, HOOK, SMALL, out=tmp_path / "crashed", progress=False)

    want = _weights(tmp_path / "full")
    for run, got in ((resumed, tmp_path / "paused"), (after_crash, tmp_path / "crashed")):
        assert all(torch.equal(want[k], v) for k, v in _weights(got).items())
        pd.testing.assert_frame_equal(run.history, full.history)
        assert not (got / "checkpoints").exists()


def test_a_checkpoint_of_another_run_is_refused(store_path, tmp_path):
    train_sae(store_path, HOOK, SMALL, out=tmp_path / "a", progress=False, stop_after=10)
    with pytest.raises(ValueError, match="another run"):
        train_sae(store_path, HOOK, replace(SMALL, seed=1), out=tmp_path / "a", progress=False)


def test_training_from_the_store_equals_training_from_memory(store_path):
    a = train_sae(store_path, HOOK, SMALL, progress=False)
    b = train_sae(store_path, HOOK, SMALL, progress=False, in_memory=True)
    assert torch.equal(a.sae.decoder, b.sae.decoder)
    pd.testing.assert_frame_equal(a.history, b.history)


def test_layer_sweep_trains_one_sae_per_hook_and_skips_finished_ones(store_path, tmp_path):
    cfg = replace(SMALL, samples=32 * 10)
    saes = train_layers(store_path, cfg, out=tmp_path / "sweep", progress=False)
    assert list(saes) == list(HOOKS)
    for hook in HOOKS:
        assert json.loads((tmp_path / "sweep" / hook / "manifest.json").read_text())["hook"] == hook
    again = train_layers(store_path, cfg, out=tmp_path / "sweep", progress=False)
    assert torch.equal(again[HOOKS[1]].sae.decoder, saes[HOOKS[1]].sae.decoder)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda s, o: train_sae(s.parent / "nope", HOOK, SMALL, out=o), FileNotFoundError, "not a step store"),
        (lambda s, o: train_sae(s, "blocks.9.hook_resid_post", SMALL, out=o), KeyError, "hook="),
        (lambda s, o: train_sae(s, HOOK, SMALL, pooling="mean", out=o), KeyError, "pooling='mean'"),
        (lambda s, o: train_sae(s, HOOK, replace(SMALL, width=0), out=o), ValueError, "width=0"),
        (lambda s, o: train_sae(s, HOOK, replace(SMALL, batch_size=10_000, samples=10_000), out=o), ValueError,
         "batch_size"),
    ],
)  # fmt: skip
def test_bad_input_fails_clearly_before_anything_is_written(store_path, tmp_path, call, error, match):
    out = tmp_path / "out"
    with pytest.raises(error, match=match):
        call(store_path, out)
    assert not out.exists()


def test_a_store_with_nan_rows_is_refused_by_name(tmp_path):
    store = write_store(tmp_path / "nan", n_traces=8, nan_steps=2)
    with pytest.raises(ValueError, match=r"2 step vectors .* contain NaN or inf \(first: \('p0/t0', 0\)"):
        train_sae(store, HOOK, SMALL, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_existing_sae_is_not_overwritten_by_accident(store_path, tmp_path):
    cfg = replace(SMALL, samples=32 * 10)
    train_sae(store_path, HOOK, cfg, out=tmp_path / "o", progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        train_sae(store_path, HOOK, cfg, out=tmp_path / "o", progress=False)
    train_sae(store_path, HOOK, cfg, out=tmp_path / "o", progress=False, overwrite=True)


def test_cli_trains_and_prints_held_out_metrics(store_path, tmp_path, capsys):
    from workbench.cli import main

    argv = ["train-sae", "--store", str(store_path), "--hook", HOOK, "--arch", "topk", "--width", "32", "--k", "3",
            "--batch-size", "32", "--samples", "320", "--out", str(tmp_path / "cli"), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["hook"] == HOOK and line["l0"] == 3 and line["evaluated_on"] == "held-out problems"
    assert (tmp_path / "cli" / "cfg.json").exists()
    assert main([*argv[:-3], "--width", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "width=0" in capsys.readouterr().err and not (tmp_path / "bad").exists()
