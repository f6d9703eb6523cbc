"""Generation with step tracking on the tiny model, checked against plain per-prompt Hugging Face generate."""

from __future__ import annotations

import string
from dataclasses import replace

import pytest
import torch

from workbench.labels import generate_toy_traces
from workbench.toy import TaskConfig, generate_samples
from workbench.traces import GenerationConfig, generate_traces, sample_completions

PROMPTS = ["a=1,b=2;c=a+b;?c\n", "x=5;?x\n", "b=48,i=68,c=71;n=i+c;y=c+n;?y\n"]


def test_greedy_batches_match_unpadded_generate_one_prompt_at_a_time(tiny_model):
    cfg = GenerationConfig(temperature=0, max_new_tokens=24, batch_size=3)
    got = sample_completions(tiny_model, PROMPTS, cfg, progress=False)
    tok = tiny_model.tokenizer
    for c, prompt in zip(got, PROMPTS, strict=True):
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ref = tiny_model.hf_model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=24, pad_token_id=tok.pad_token_id
        )[0, ids.shape[1] :].tolist()
        if tok.eos_token_id in ref:
            ref = ref[: ref.index(tok.eos_token_id)]
        assert c.text == tok.decode(ref)
        assert c.n_tokens == len(ref) + (c.finish_reason == "eos")


def test_sampling_is_reproducible_under_a_seed_and_leaves_the_global_rng_alone(tiny_model):
    cfg = GenerationConfig(max_new_tokens=20, num_samples=3, batch_size=4, seed=11)
    state = torch.random.get_rng_state()
    a = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    assert torch.equal(state, torch.random.get_rng_state())
    b = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    c = generate_traces(tiny_model, PROMPTS, config=replace(cfg, seed=12), progress=False)
    assert a == b
    assert [t.completion for t in a] != [t.completion for t in c]
    assert len(a) == 9 and len({t.trace_id for t in a}) == 9
    assert [t.prompt for t in a] == [p for p in PROMPTS for _ in range(3)]  # prompt-major, despite length sorting


def test_stop_strings_cut_the_text_exactly_where_an_unstopped_run_first_shows_them(tiny_model):
    free = GenerationConfig(max_new_tokens=30, batch_size=3, seed=3)
    stopped = replace(free, stop=("e", "7", "\n"))
    ref = sample_completions(tiny_model, PROMPTS, free, progress=False)
    got = sample_completions(tiny_model, PROMPTS, stopped, progress=False)
    assert any(c.finish_reason == "stop" for c in got)
    for g, r in zip(got, ref, strict=True):
        cut = min([i for i in (r.text.find(s) for s in stopped.stop) if i >= 0], default=None)
        assert g.text == (r.text if cut is None else r.text[:cut])
        assert g.finish_reason == ("stop" if cut is not None else r.finish_reason)
        assert not any(s in g.text for s in stopped.stop)


def test_traces_record_settings_provenance_and_are_segmented(tiny_model):
    cfg = GenerationConfig(max_new_tokens=16, batch_size=2, temperature=0.8, top_p=0.9)
    traces = generate_traces(tiny_model, PROMPTS, config=cfg, segmenter="newline", progress=False)
    for t in traces:
        assert t.generation | cfg.to_dict() == t.generation
        assert t.generation["n_tokens"] <= 16 and t.generation["finish"] in {"eos", "stop", "length"}
        assert t.model == tiny_model.provenance()
        assert t.segmenter == {"name": "newline", "merge_final_line": False}
        if t.completion.strip():
            assert t.steps[-1].char_end == len(t.completion) and t.steps[0].token_start is not None


def test_an_empty_completion_gives_a_trace_without_steps(tiny_model):
    cfg = GenerationConfig(max_new_tokens=2, stop=tuple(string.printable), batch_size=3)
    traces = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    assert all(t.completion == "" and t.steps == () for t in traces)
    assert all(t.generation["finish"] == "stop" for t in traces)


def test_toy_traces_are_labelled_by_the_checker_and_show_a_progress_bar(tiny_model, capsys):
    problems = [s.problem for s in generate_samples(TaskConfig(), 3, seed=4)]
    traces = generate_toy_traces(tiny_model, problems, config=GenerationConfig(max_new_tokens=30, batch_size=8))
    assert "generate" in capsys.readouterr().err  # tqdm
    assert [t.gold_answer for t in traces] == [str(p.answer) for p in problems]
    for t in traces:
        assert t.answer_correct is not None
        assert all(
            {"kind", "correct", "logical", "first_error", "prefix_correct", "viable"} <= set(s.labels) for s in t.steps
        )
    with pytest.raises(ValueError, match="problem_ids: ids must be unique"):
        generate_toy_traces(tiny_model, problems[:1] * 2, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -1}, "temperature=-1"),
        ({"top_p": 0}, "top_p=0"),
        ({"max_new_tokens": 0}, "max_new_tokens=0"),
        ({"num_samples": 0}, "num_samples=0"),
        ({"stop": ("",)}, "stop strings must be non-empty"),
    ],
)
def test_bad_generation_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig(**kwargs)


def test_mismatched_problem_ids_are_refused(tiny_model):
    with pytest.raises(ValueError, match="problem_ids: 1 values for 3 prompts"):
        generate_traces(tiny_model, PROMPTS, problem_ids=["a"], progress=False)
