"""Training phases: the schedule and task per global step, the CLI's --then, and a resumable run across phases."""

import json

import pytest

from workbench.toy.train import Phase, TrainConfig, _lr_at, _parse_args, train


def test_phase_at_and_lr_follow_each_phase_schedule():
    cfg = _parse_args(["--steps", "100", "--warmup", "10", "--then", "50,1e-3,5,p_error=0.2,p_correct=0.9"])
    assert cfg.total_steps == 150
    assert cfg.phase_at(99)[4].p_error == 0.1 and cfg.phase_at(100)[4].p_error == 0.2
    assert cfg.phase_at(149)[4].p_correct == 0.9
    assert _lr_at(9, cfg) == pytest.approx(2e-3)  # end of phase 1 warm-up
    assert _lr_at(100, cfg) == pytest.approx(1e-3 / 5)  # phase 2 restarts its own warm-up
    assert _lr_at(104, cfg) == pytest.approx(1e-3)
    assert _lr_at(149, cfg) < 1.2e-4  # cosine down to 10% by the end of phase 2


def test_bad_phase_is_refused_with_the_field():
    with pytest.raises(ValueError, match="Phase.steps"):
        Phase(steps=0, lr=1e-3)
    with pytest.raises(SystemExit):
        _parse_args(["--then", "10,1e-3,0,no_such_field=1"])


def test_a_run_split_at_the_phase_boundary_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    def cfg(out, steps_total):
        return TrainConfig(
            out=str(out),
            checkpoint_dir=str(out / "ckpt"),
            hidden_size=16,
            n_layers=1,
            n_heads=2,
            intermediate_size=32,
            steps=3,
            batch_size=4,
            warmup=1,
            save_every=1,
            eval_every=0,
            phases=(Phase(steps=steps_total - 3, lr=1e-3, warmup=1),),
        )

    train(cfg(tmp_path / "a", 5))
    train(cfg(tmp_path / "b", 4))  # stops inside phase 2 ...
    train(cfg(tmp_path / "b", 5))  # ... and resumes to the end
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] == b[k]).all(), k
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert record["config"]["phases"][0]["steps"] == 2
