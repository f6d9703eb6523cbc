"""Interventions: scoping, positions, the projection's sign convention, cached generation, composition."""

from __future__ import annotations

import pytest
import torch

from workbench.steering import (
    Additive,
    Clamp,
    Positions,
    Projection,
    SteeringError,
    SteeringVector,
    load_sae_weights,
    steer,
)
from workbench.traces.generate import left_pad

HOOK = "blocks.0.hook_resid_post"
PROMPTS = ["b48,i68,c71;n=i+c;y=c+n;?y\n", "q12,r5,s90;t=q-s;?t\n"]
TEXT = "b48,i68,c71;n=i+c;?n\nn=i68+c71=n39\nwait n39\nans=39\n"


def vec(model, seed=0, scale=4.0, hook=HOOK, name="v") -> SteeringVector:
    g = torch.Generator().manual_seed(seed)
    return SteeringVector(vector=torch.randn(model.d_model, generator=g) * scale, hook=hook, name=name)


def logits(model, text=TEXT):
    enc = model.tokenize([text])
    return model.forward(enc["input_ids"], enc["attention_mask"])


def left_padded(model, texts):
    rows = model.tokenizer(texts, add_special_tokens=False)["input_ids"]
    batch = left_pad(rows, model.tokenizer.pad_token_id)
    return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}


def newline_positions(model, text=TEXT) -> list[int]:
    ids = model.tokenize([text])["input_ids"][0].tolist()
    nl = model.tokenizer.convert_tokens_to_ids("\n")
    return [i for i, t in enumerate(ids) if t == nl]


def read_at(model, hook, text=TEXT):
    """The activation at ``hook`` as later hooks see it (after any steering attached before)."""
    seen = {}
    with model.hooks([(hook, lambda act, h: seen.setdefault("x", act.clone()))]):
        logits(model, text)
    return seen["x"][0]


def test_outputs_bit_identical_after_with_and_remove(tiny_model):
    base = logits(tiny_model)
    enc = left_padded(tiny_model, PROMPTS)
    gen = tiny_model.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=12, do_sample=False)
    iv = [Additive(vector=vec(tiny_model), alpha=2.0, positions=Positions(kind="all"))]
    with steer(tiny_model, iv) as handle:
        assert handle.attached
        assert not torch.equal(logits(tiny_model), base)
    assert not handle.attached
    assert torch.equal(logits(tiny_model), base)
    handle = steer(tiny_model, iv + [Projection(vector=vec(tiny_model, 1), positions=Positions(kind="all"))])
    assert not torch.equal(logits(tiny_model), base)
    handle.remove()
    handle.remove()  # idempotent
    assert torch.equal(logits(tiny_model), base)
    again = tiny_model.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=12, do_sample=False)
    assert torch.equal(again, gen)


def test_removed_on_error(tiny_model):
    base = logits(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), steer(tiny_model, Additive(vector=vec(tiny_model), alpha=3.0)):
        raise RuntimeError("boom")
    assert torch.equal(logits(tiny_model), base)


def test_boundary_only_changes_nothing_before_the_first_boundary(tiny_model):
    base = logits(tiny_model)[0]
    nl = newline_positions(tiny_model)
    with steer(tiny_model, Additive(vector=vec(tiny_model), alpha=3.0, positions=Positions(kind="boundary"))):
        out = logits(tiny_model)[0]
        edited = read_at(tiny_model, HOOK)
    first = nl[0]
    assert torch.equal(out[:first], base[:first])
    assert not torch.allclose(out[first], base[first])
    # exactly the newline tokens were edited, by alpha * v
    plain = read_at(tiny_model, HOOK)
    changed = (edited - plain).abs().amax(-1) > 0
    assert changed.nonzero().flatten().tolist() == nl
    torch.testing.assert_close(edited[nl[1]] - plain[nl[1]], 3.0 * vec(tiny_model).vector)


def test_from_and_generated_only_positions(tiny_model):
    base = logits(tiny_model)[0]
    with steer(tiny_model, Additive(vector=vec(tiny_model), alpha=3.0, positions=Positions(kind="from", start=10))):
        out = logits(tiny_model)[0]
    assert torch.equal(out[:10], base[:10]) and not torch.allclose(out[10], base[10])
    # a plain forward is all prompt: generated_only edits nothing there
    with steer(
        tiny_model, Additive(vector=vec(tiny_model), alpha=3.0, positions=Positions(kind="all", generated_only=True))
    ):
        assert torch.equal(logits(tiny_model)[0], base)
    with pytest.raises(SteeringError, match="start > 0"):
        Positions(kind="from")
    with pytest.raises(ValueError, match="segmenter"):
        Positions(segmenter="nope")


def test_projection_sign_convention_and_full_ablation(tiny_model):
    plain = read_at(tiny_model, HOOK)
    v = SteeringVector(vector=plain[3], hook=HOOK)  # a direction the activations have a component along
    u = v.direction
    assert (plain @ u).abs().max() > 0.3 * plain.norm(dim=-1).max()  # there is a component to remove
    for alpha in (1.0, 0.5, -1.0, 2.0):
        with steer(tiny_model, Projection(vector=v, alpha=alpha, positions=Positions(kind="all"))):
            edited = read_at(tiny_model, HOOK)
        # the component along u becomes (1 - alpha) times what it was; nothing orthogonal moves
        torch.testing.assert_close(edited @ u, (1 - alpha) * (plain @ u), atol=1e-7, rtol=1e-5)
        orth = lambda x: x - (x @ u)[:, None] * u  # noqa: E731
        torch.testing.assert_close(orth(edited), orth(plain), atol=1e-7, rtol=1e-5)
    with steer(tiny_model, Projection(vector=v, alpha=1.0, positions=Positions(kind="all"))):
        edited = read_at(tiny_model, HOOK)
    assert (edited @ u).abs().max() <= 1e-6 * plain.norm(dim=-1).max()


def test_cached_generation_equals_full_forward(tiny_model):
    """Greedy cached generation under boundary steering vs one forward pass per row over the same tokens."""
    enc = left_padded(tiny_model, PROMPTS)  # rows of different lengths
    ivs = [
        Additive(vector=vec(tiny_model, 3, scale=6.0), alpha=1.0, positions=Positions(kind="boundary")),
        Additive(
            vector=vec(tiny_model, 4, hook="blocks.1.hook_resid_pre"),
            alpha=1.0,
            positions=Positions(kind="from", start=22),
        ),
    ]
    with steer(tiny_model, ivs):
        out = tiny_model.generate(
            enc["input_ids"], enc["attention_mask"], max_new_tokens=16, do_sample=False,
            output_logits=True, return_dict_in_generate=True, eos_token_id=None,
        )  # fmt: skip
    gen_logits = torch.stack(out.logits, 1)  # [batch, new, vocab]
    unsteered = tiny_model.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=16, do_sample=False)
    assert not torch.equal(unsteered, out.sequences)  # the steering changed what was generated
    for r in range(len(PROMPTS)):
        real = out.sequences[r][torch.cat([enc["attention_mask"][r].bool(), torch.ones(16, dtype=torch.bool)])]
        with steer(tiny_model, ivs):
            full = tiny_model.forward(real[None])[0]
        n_prompt = int(enc["attention_mask"][r].sum())
        # logits predicting generated token k sit at position n_prompt - 1 + k of the unpadded row
        torch.testing.assert_close(full[n_prompt - 1 : n_prompt - 1 + 16], gen_logits[r], atol=1e-5, rtol=1e-5)


def test_compose_two_additive_equals_their_sum(tiny_model):
    a, b = vec(tiny_model, 5), vec(tiny_model, 6)
    both = SteeringVector(vector=a.vector + 0.5 * b.vector, hook=HOOK)
    pos = Positions(kind="all")
    with steer(tiny_model, [Additive(vector=a, positions=pos), Additive(vector=b, alpha=0.5, positions=pos)]):
        two = logits(tiny_model)
    with steer(tiny_model, Additive(vector=both, positions=pos)):
        one = logits(tiny_model)
    torch.testing.assert_close(two, one, atol=1e-5, rtol=1e-5)


def test_clamp_edits_by_decoder_column_times_change(tiny_model, sae_dir):
    w = load_sae_weights(sae_dir)
    latent = int(w.encode(read_at(tiny_model, HOOK)).sum(0).argmax())  # an active latent
    plain = read_at(tiny_model, HOOK)
    with steer(tiny_model, Clamp(sae=sae_dir, latent=latent, value=0.0, hook=HOOK, positions=Positions(kind="all"))):
        edited = read_at(tiny_model, HOOK)
    a = w.encode(plain)[:, latent]
    torch.testing.assert_close(edited, plain - a[:, None] * w.W_dec[latent], atol=1e-5, rtol=1e-5)
    assert a.abs().max() > 0


def test_wrong_hook_width_or_latent_fails_before_attaching(tiny_model, sae_dir):
    base = logits(tiny_model)
    good = Additive(vector=vec(tiny_model), positions=Positions(kind="all"))
    with pytest.raises(SteeringError, match="d_model is 32"):
        steer(tiny_model, [good, Additive(vector=SteeringVector(vector=torch.ones(8), hook=HOOK))])
    with pytest.raises(SteeringError, match="blocks.9.hook_resid_post"):
        steer(
            tiny_model, [good, Additive(vector=SteeringVector(vector=torch.ones(32), hook="blocks.9.hook_resid_post"))]
        )
    with pytest.raises(SteeringError, match="latent=99"):
        Clamp(sae=sae_dir, latent=99, hook=HOOK)
    with pytest.raises(SteeringError, match="records its hook|does not record"):
        Clamp(sae=sae_dir, latent=1)
    with pytest.raises(SteeringError, match="empty"):
        steer(tiny_model, [])
    assert torch.equal(logits(tiny_model), base)  # nothing was left attached


def test_sampled_generation_through_generate_traces(tiny_model):
    """Steering works inside workbench.traces.generate_traces (sampled, batched, KV cache)."""
    from workbench.traces import GenerationConfig, generate_traces

    cfg = GenerationConfig(temperature=1.0, max_new_tokens=20, seed=0, batch_size=2)
    base = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    with steer(
        tiny_model, Additive(vector=vec(tiny_model, scale=50.0), positions=Positions(kind="all", generated_only=True))
    ):
        steered = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    again = generate_traces(tiny_model, PROMPTS, config=cfg, progress=False)
    assert [t.completion for t in again] == [t.completion for t in base]
    assert [t.completion for t in steered] != [t.completion for t in base]


def _live_boundaries(tokenizer, text: str, segmenter: str, chunk: int) -> list[int]:
    """Boundary positions the tracker finds when ``text`` arrives ``chunk`` tokens per forward call."""
    from workbench.steering import TokenTracker

    class Cache:
        def __init__(self, n):
            self.n = n

        def get_seq_length(self):
            return self.n

    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    tracker, found = TokenTracker(tokenizer), []
    for a in range(0, ids.shape[1], chunk):
        part = ids[:, a : a + chunk]
        mask = torch.ones(1, a + part.shape[1], dtype=torch.long)
        tracker.pre_hook(None, (), {"input_ids": part, "attention_mask": mask, "cache": Cache(a) if a else None})
        m = tracker.mask(Positions(kind="boundary", segmenter=segmenter))
        found += [] if m is None else [a + int(j) for j in m[0].nonzero().flatten()]
    return found


@pytest.mark.parametrize(
    ("segmenter", "text"),
    [("newline", "q1;?q\nn=1\nwait n2\ncheck n2\nans=2\n"), ("double_newline", "q1;?q\nn=1\n\nwait n2\ncheck n2\n\n")],
)
def test_live_boundaries_match_the_segmenter_whatever_the_chunking(char_tokenizer, segmenter, text):
    """Same positions as the offline segmenter (for text whose steps all end in their delimiter), any chunking."""
    from workbench.traces import Trace, segment_trace

    trace = segment_trace(Trace(trace_id="t", problem_id="p", prompt="", completion=text), segmenter,
                          tokenizer=char_tokenizer)  # fmt: skip
    expected = [s.boundary_token for s in trace.steps]
    for chunk in (1, 3, len(text)):
        assert _live_boundaries(char_tokenizer, text, segmenter, chunk) == expected
