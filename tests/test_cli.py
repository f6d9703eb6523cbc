"""The ``workbench`` command as a front door: plain help with defaults, the Python API's defaults, one-line
errors with exit status 2 before any model loads, and generate → label → capture end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.capture import CaptureConfig
from workbench.cli import _capture_config, build_parser, config_from_args, main, plain_text
from workbench.labels import KeywordConfig
from workbench.labels.checker import TOY_GENERATION
from workbench.store import open_store
from workbench.traces import GenerationConfig, load_traces, save_traces

COMMANDS = ("generate", "label", "capture")


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return " ".join(sub.format_help().split())  # unwrapped


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_plain_text_with_defaults(command):
    text = _help(command)
    assert "``" not in text and ":func:" not in text and ":data:" not in text and ":class:" not in text
    assert "(default: " in text


def test_help_shows_the_config_defaults():
    cap, gen, lab = _help("capture"), _help("generate"), _help("label")
    assert "(default: 16384)" in cap and "(default: boundary last mean max)" in cap
    assert "--no-progress" in cap and "(default: 1.0)" in gen and "160 with --toy" in gen
    assert "'hold on'" in lab  # a multi-word default is shown as it would be typed
    assert plain_text("see :func:`~workbench.capture.capture` and ``x``") == "see capture and x"


def test_defaults_equal_the_python_api(tmp_path):
    parse = build_parser().parse_args
    args = parse(["capture", "--toy", "1", "--out", str(tmp_path / "s")])
    assert _capture_config(args) == CaptureConfig()
    gen_fields = [f for f in GenerationConfig.__dataclass_fields__]
    args = parse(["generate", "--prompts", "p.txt", "--out", "t.jsonl"])
    assert config_from_args(GenerationConfig(), args, gen_fields) == GenerationConfig()
    assert config_from_args(TOY_GENERATION, args, gen_fields) == TOY_GENERATION
    args = parse(["generate", "--toy", "2", "--out", "t.jsonl", "--temperature", "0", "--stop", "ans"])
    assert config_from_args(TOY_GENERATION, args, gen_fields) == GenerationConfig(
        max_new_tokens=160, temperature=0.0, stop=("ans",)
    )
    args = parse(["label", "--traces", "t.jsonl", "--out", "u.jsonl", "--source", "keywords", "--no-ignore-case"])
    assert config_from_args(KeywordConfig(), args, list(KeywordConfig.__dataclass_fields__)) == KeywordConfig(
        ignore_case=False
    )


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("workbench: error: "), err
    return err[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command loads a model: these inputs must be refused first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr("workbench.models.load_model", refuse)


@pytest.fixture
def toy_file(tmp_path, char_tokenizer):
    from workbench.labels import traces_from_samples
    from workbench.toy import TaskConfig, generate_samples

    path = tmp_path / "toy.jsonl"
    save_traces(traces_from_samples(generate_samples(TaskConfig(), 3, seed=0), tokenizer=char_tokenizer), path)
    return path


def test_bad_inputs_are_one_line_exit_2_before_the_model_loads(tmp_path, capsys, no_model_load, toy_file):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "no prompt field"}\n')
    cases = [
        (["capture", "--traces", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "s")], "no such file"),
        (["capture", "--traces", str(empty), "--out", str(tmp_path / "s")], "holds no traces"),
        (["capture", "--toy", "2", "--out", str(tmp_path / "s"), "--layers", "9"], "layers: 9 is not a layer"),
        (["capture", "--toy", "2", "--out", str(tmp_path / "s"), "--batch-size", "0"], "batch_size=0"),
        (["capture", "--toy", "2", "--out", str(tmp_path / "s"), "--hooks", "blocks.0.attn.hook_z"], "--hooks"),
        (["capture", "--toy", "0", "--out", str(tmp_path / "s")], "at least 1"),
        (["generate", "--prompts", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "t.jsonl")], "no prompts"),
        (["generate", "--prompts", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "t.jsonl")], "'prompt'"),
        (["generate", "--toy", "2", "--out", str(tmp_path / "t.txt")], ".jsonl or .parquet"),
        (["generate", "--toy", "2", "--out", str(tmp_path / "t.jsonl"), "--top-p", "2"], "top_p=2.0"),
        (["label", "--traces", str(empty), "--out", str(tmp_path / "u.jsonl"), "--source", "checker"], "no traces"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        line = _one_error_line(capsys)
        assert message in line and "Traceback" not in line, (argv, line)
    assert not (tmp_path / "s").exists() and not (tmp_path / "t.jsonl").exists()


def test_argparse_errors_are_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["capture", "--toy", "2", "--out", "x", "--poolings", "boundry"])
    assert exit_.value.code == 2
    assert "invalid choice: 'boundry'" in _one_error_line(capsys)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="no such file"):
        main(["--debug", "capture", "--traces", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "s")])
    with pytest.raises(Exception, match="no such file"):
        main(["capture", "--traces", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "s"), "--debug"])


def test_the_console_command_exits_2_with_one_line(tmp_path):
    cmd = [sys.executable, "-m", "workbench.cli", "label", "--traces", str(tmp_path / "x.jsonl")]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "y.jsonl"), "--source", "checker"], capture_output=True)
    assert done.returncode == 2
    assert done.stderr.decode().strip().splitlines() == [
        f"workbench: error: --traces {tmp_path / 'x.jsonl'}: no such file (--debug shows the traceback)"
    ]


def test_generate_label_capture_end_to_end(tmp_path, tiny_model_dir, capsys):
    model = ["--model", str(tiny_model_dir), "--device", "cpu"]
    traces, labelled, store = tmp_path / "t.jsonl", tmp_path / "l.parquet", tmp_path / "store"
    argv = ["generate", "--toy", "3", "--max-new-tokens", "12", "--out", str(traces), *model, "--no-progress"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["traces"] == 3
    got = load_traces(traces)
    assert len(got) == 3 and all(t.generation["max_new_tokens"] == 12 for t in got)
    argv = ["label", "--traces", str(traces), "--out", str(labelled), "--source", "checker", "keywords"]
    assert main(argv) == 0
    assert {"reflection", "correct"} <= set(json.loads(capsys.readouterr().out)["labels"])
    argv = ["capture", "--traces", str(labelled), "--out", str(store), *model, "--layers", "1", "--no-progress"]
    assert main([*argv, "--poolings", "boundary", "mean"]) == 0
    index = open_store(store).index
    assert {"label_correct", "label_reflection"} <= set(index.columns)
    assert open_store(store).poolings == ["boundary", "mean"]


def test_generate_from_a_prompts_file(tmp_path, tiny_model_dir, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "a5;?a\\n", "problem_id": "q1", "gold_answer": 5}\n{"prompt": "b7;?b\\n"}\n')
    out = tmp_path / "t.jsonl"
    argv = ["generate", "--prompts", str(prompts), "--out", str(out), "--model", str(tiny_model_dir)]
    assert main([*argv, "--device", "cpu", "--max-new-tokens", "8", "--temperature", "0", "--no-progress"]) == 0
    got = load_traces(out)
    assert [t.problem_id for t in got] == ["q1", "prompt1"] and got[0].gold_answer == "5"
    assert got[0].generation["temperature"] == 0.0
