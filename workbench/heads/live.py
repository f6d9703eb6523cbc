"""Live step scoring: head scores for each step while the model is still generating the trace.

No second forward pass: scoped hooks on the head's feature hooks keep the newest position of every
generating forward (the KV cache feeds one token per forward, so that position *is* the newest token;
they are copied to the CPU once per scoring call, not once per token),
and a Hugging Face stopping criterion — called after every sampled token with the ids so far — notices
when a step is complete and scores it. A generated token's hidden state is computed by the forward that
reads it, i.e. the one that samples the next token; so a step ending in the boundary token ``\\n`` is
ready right after the following token is sampled (a last step ending in end-of-sequence when that
token is sampled). All rows whose step completed at the same token are scored in one batched head call
(at most one call per generated token, whatever the batch size), on exactly their new tokens, by the
incremental head of :mod:`workbench.heads.incremental` (the encoder's keys and values are cached, so a step
costs only its own tokens).

**Where the head runs.** With ``offload=True`` (the default when the model is on a GPU, or when this
process may use more CPUs than torch's threads occupy) the head runs in a scoring process of its own: the
hooks' features go to a buffer in shared memory, a short message over a pipe names each completed step, and
the generating process goes on sampling while another core scores it; a score is collected at the next
token whose callback finds it ready (``scored_after_tokens`` says when; usually one token later) and every
outstanding score is collected before ``attached`` exits. With ``offload=False`` the head runs in the
callback itself and each score is ready one token after its step's end. The scores are the same.
The scoring process starts once per :class:`LiveStepScorer` (about 0.3 s): keep one scorer for many
``generate`` calls (it is a context manager; :meth:`LiveStepScorer.close` stops the process).

The head is causal (:class:`~workbench.heads.HeadConfig` ``causal=True``), so each live score equals the
offline score of the same trace (tested). Only hidden-state features are available live; a head trained
with ``logit_features`` is refused.
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import subprocess
import sys
import tempfile
import weakref
from collections import deque
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from transformers import StoppingCriteria, StoppingCriteriaList

from workbench.heads import incremental
from workbench.heads.incremental import IncrementalHead, step_features
from workbench.heads.model import UncertaintyHead
from workbench.traces.generate import GenerationConfig, batch_seed, left_pad

__all__ = ["LiveStepScorer", "LiveResult", "generate_scored", "generate_with_scorer", "head_weights"]


def _np(t: torch.Tensor) -> np.ndarray:
    """A float32 NumPy copy of a weight."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _linear(prefix: str, weight: torch.Tensor, bias: torch.Tensor) -> dict[str, np.ndarray]:
    """``nn.Linear`` as ``{prefix_w: Wᵀ, prefix_b: b}`` for ``x @ Wᵀ + b``."""
    return {f"{prefix}_w": _np(weight).T.copy(), f"{prefix}_b": _np(bias)}


def _norm_then_linear(prefix: str, norm: torch.nn.LayerNorm, weight: torch.Tensor, bias: torch.Tensor) -> dict:
    """``linear(norm(x))`` as ``standardise(x) @ W + c``: the norm's scale and shift folded into the matrix
    (``W = diag(γ) Aᵀ``, ``c = β Aᵀ + b``)."""
    a = weight.detach().float()
    return {f"{prefix}_w": _np(norm.weight[:, None] * a.T), f"{prefix}_b": _np(norm.bias @ a.T + bias)}


@torch.no_grad()
def head_weights(head: UncertaintyHead) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``(config, weights)`` an :class:`~workbench.heads.incremental.IncrementalHead` runs ``head`` from:
    its input standardisation folded into the first projection, every layer norm's affine part folded
    into the matrix after it, all float32."""
    cfg, first = head.cfg, head.proj[0]
    w0 = first.weight / head.feat_scale
    weights = {
        "p0_w": _np(w0).T.copy(),
        "p0_b": _np(first.bias - w0 @ head.feat_mean),
        **_linear("p1", head.proj[2].weight, head.proj[2].bias),
        "in_step": _np(head.in_step.weight),
        "pos": _np(head.pos.weight),
    }
    for i, L in enumerate(head.encoder.layers):
        weights |= _norm_then_linear(f"L{i}.qkv", L.norm1, L.self_attn.in_proj_weight, L.self_attn.in_proj_bias)
        weights |= _linear(f"L{i}.o", L.self_attn.out_proj.weight, L.self_attn.out_proj.bias)
        weights |= _norm_then_linear(f"L{i}.f1", L.norm2, L.linear1.weight, L.linear1.bias)
        weights |= _linear(f"L{i}.f2", L.linear2.weight, L.linear2.bias)
    o = head.out
    weights |= _norm_then_linear("o1", o[0], o[1].weight, o[1].bias) | _linear("o2", o[3].weight, o[3].bias)
    if head.pool_score is not None:
        weights |= {"pool_w": _np(head.pool_score.weight)[0], "pool_b": _np(head.pool_score.bias)[0]}
    layers = list(head.encoder.layers)
    config = {
        "width": cfg.width,
        "n_heads": cfg.n_heads,
        "n_layers": len(layers),
        "max_len": cfg.max_len,
        "max_in_step": cfg.max_in_step,
        "pool": cfg.pool,
        "eps1": [L.norm1.eps for L in layers],
        "eps2": [L.norm2.eps for L in layers],
        "out_eps": o[0].eps,
    }
    return config, weights


def _cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _stop(proc: subprocess.Popen, paths: list[str]) -> None:
    """Ask a scoring process to quit (kill it if it does not), close its pipes and remove features files it
    left."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if proc.poll() is None:
        try:
            proc.stdin.write(b"Q")
            proc.stdin.flush()
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        with contextlib.suppress(OSError, ValueError):
            pipe.close()


def _shm_dir() -> str | None:
    """Shared memory for the features file where the system has it (``/dev/shm``), else the temp folder."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class _ScoringProcess:
    """A NumPy scoring process (``python incremental.py``) and the pipe protocol to it."""

    def __init__(self, head: UncertaintyHead) -> None:
        config, weights = head_weights(head)
        env = os.environ | {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        flags = ["-P"] if sys.version_info >= (3, 11) else []  # don't put workbench/heads on its sys.path
        self.proc = subprocess.Popen(
            [sys.executable, *flags, incremental.__file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.paths: list[str] = []  # features files made; the process unlinks each once it has mapped it
        self._finalizer = weakref.finalize(self, _stop, self.proc, self.paths)
        self.fd = self.proc.stdout.fileno()
        self.buf = bytearray()
        self._write(incremental.pack_weights(config, weights))
        self._wait_for(1)
        if self.buf[:1] != b"K":
            self._fail()
        del self.buf[:1]
        os.set_blocking(self.fd, False)

    def _fail(self):
        """Raise the process's error message (skipping answers still buffered before it), or its exit code."""
        buf = self.buf
        while buf[:1] == b"S" and len(buf) >= 9 and len(buf) >= 9 + 8 * struct.unpack("<i", buf[5:9])[0]:
            buf = buf[9 + 8 * struct.unpack("<i", buf[5:9])[0] :]
        if buf[:1] == b"E" and len(buf) >= 5:
            (n,) = struct.unpack("<I", buf[1:5])
            raise RuntimeError(f"the live scoring process failed: {bytes(buf[5 : 5 + n]).decode()}")
        raise RuntimeError(f"the live scoring process stopped unexpectedly (exit code {self.proc.poll()})")

    def _read_some(self, timeout: float | None) -> bool:
        """Append what the process has written to the buffer; False when nothing came within ``timeout``."""
        if timeout != 0:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return False
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return False
        if not data:
            self._fail()
        self.buf += data
        return True

    def _wait_for(self, n: int) -> None:
        while len(self.buf) < n:
            if not self._read_some(60.0):
                raise RuntimeError("the live scoring process did not answer within 60 s")

    def features_file(self, batch: int, slots: int, n_feats: int) -> np.memmap:
        """A new shared features file ``[batch, slots, n_feats]``, mapped here and in the process."""
        fd, path = tempfile.mkstemp(prefix="workbench-live-", suffix=".f32", dir=_shm_dir())
        self.paths.append(path)
        try:
            os.ftruncate(fd, batch * slots * n_feats * 4)
        finally:
            os.close(fd)
        buf = np.memmap(path, np.float32, "r+", shape=(batch, slots, n_feats))
        name = path.encode()
        self._write(b"M" + struct.pack("<2iI", batch, slots, len(name)) + name, flush=False)
        return buf

    def reset(self, batch: int) -> None:
        self._write(b"R" + struct.pack("<i", batch), flush=False)

    def send(self, seq: int, rows: list[int], starts: list[int], end: int) -> None:
        self._write(struct.pack("<c3i", b"S", seq, len(rows), end) + np.asarray(rows + starts, "<i4").tobytes())

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _write(self, data: bytes, flush: bool = True) -> None:
        """Write to the process; if it has gone, raise its own error message (or its exit code)."""
        try:
            self.proc.stdin.write(data)
            if flush:
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            self.proc.wait(timeout=5)
            with contextlib.suppress(RuntimeError):
                while self._read_some(0.5):  # whatever it wrote before exiting (an error message)
                    pass
            self._fail()

    def results(self, block: bool) -> list[tuple[int, list[float]]]:
        """The ``(sequence number, logits)`` answers that have arrived (with ``block``: at least one)."""
        out: list[tuple[int, list[float]]] = []
        self._read_some(0)
        while True:
            if self.buf[:1] == b"E":
                self._wait_for(5)
                self._wait_for(5 + struct.unpack("<I", self.buf[1:5])[0])
                self._fail()
            if len(self.buf) >= 9 and self.buf[:1] != b"S":
                self._fail()
            r = struct.unpack("<i", self.buf[5:9])[0] if len(self.buf) >= 9 else None
            if r is not None and len(self.buf) >= 9 + 8 * r:
                seq = struct.unpack("<i", self.buf[1:5])[0]
                out.append((seq, np.frombuffer(bytes(self.buf[9 : 9 + 8 * r]), "<f8").tolist()))
                del self.buf[: 9 + 8 * r]
            elif block and not out:
                if not self._read_some(60.0):
                    raise RuntimeError("the live scoring process did not answer within 60 s")
            else:
                return out

    def close(self) -> None:
        self._finalizer()


class LiveStepScorer(StoppingCriteria):
    """Collects the head's features during ``generate`` and scores each step as soon as it is complete.

    ``offload``: run the head in a scoring process of its own (another CPU core scores while this one
    generates; see the module docstring); None: when the model is not on the CPU, or when this process may
    use more CPUs than ``torch.get_num_threads()`` (a core the model leaves free; on CPU with torch on every
    core the scoring process would slow torch's threads, measured in ``benchmarks/live_scoring.py``). Use it
    as a context manager (or call :meth:`close`) to stop that process; garbage collection stops it otherwise.
    """

    def __init__(self, model, head: UncertaintyHead, *, boundary: str = "\n", offload: bool | None = None) -> None:
        if head.cfg.logit_features:
            raise ValueError("live scoring reads hidden states only; train the head with logit_features=False")
        if not head.cfg.causal:
            raise ValueError("live scoring needs a causal head (HeadConfig(causal=True)) to match offline scores")
        model.validate_hooks(head.cfg.hooks)
        self.model, self.head, self.boundary = model, head.eval(), boundary
        tok = model.tokenizer
        kind = [int(boundary in tok.decode([i])) for i in range(len(tok))]  # bit 1: ends a step
        kind[tok.eos_token_id] |= 2  # bit 2: end of sequence
        self._kind = kind
        self._n_feats = model.d_model * len(head.cfg.hooks)
        if offload is None:
            offload = model.device.type != "cpu" or _cpus() > torch.get_num_threads()
        self.offload = bool(offload)
        self._process: _ScoringProcess | None = None
        self._seq = 0  # step batches sent to the scoring process, over all generate calls
        self._host: np.ndarray | None = None  # [batch, completion token, feature] on the CPU: what the head reads
        self._local: tuple[dict, dict] | None = None
        self.records: list[dict] = []

    def close(self) -> None:
        """Stop the scoring process (if any); a later ``generate`` starts a new one."""
        if self._process is not None:
            self._process.close()
            self._process = self._host = None

    def __enter__(self) -> LiveStepScorer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- hooks and the features buffer ------------------------------------------------------------
    def _record(self, activation, hook):
        name = getattr(hook, "name", hook)
        calls = self._calls[name] = self._calls[name] + 1
        if calls > 1:  # the first forward reads the prompt; later ones one new token each (KV cache)
            self._pending.append(activation if activation.shape[1] == 1 else activation[:, -1:])
            if len(self._order) < len(self._calls):
                self._order.append(name)  # the order the hooks fire in, seen on the first new token

    def _flush(self) -> None:
        """Copy the tokens recorded since the last flush into the features buffer: one concatenation of
        everything recorded (hooks in firing order, token after token) and one copy."""
        pending, hooks = self._pending, self.head.cfg.hooks
        n = len(pending) // len(hooks)
        if n == 0:
            return
        if self._order != list(hooks):  # reorder each token's activations to the head's feature order
            pos = [self._order.index(h) for h in hooks]
            pending = [pending[t * len(hooks) + i] for t in range(n) for i in pos]
        j, batch = self._flushed, pending[0].shape[0]
        if self._host is None or self._host.shape[0] != batch or j + n > self._host.shape[1]:
            self._grow(batch, j + n)
        self._whole[:, j : j + n].copy_(torch.cat(pending, -1).view(batch, n, self._n_feats))
        self._pending.clear()
        self._flushed = j + n

    def _grow(self, batch: int, length: int) -> None:
        """(Re)make the features buffer ``[batch, slots, feature]`` with at least ``length`` slots (doubling),
        keeping the tokens of this generation; shared with the scoring process when there is one. The
        buffer outlives the generation: the next one with the same batch size reuses it."""
        old, have = self._host, self._flushed
        slots = max(length, self._slots, 2 * old.shape[1] if have else 0)
        shape = (batch, slots, self._n_feats)
        if self._process is not None:
            self._host = self._process.features_file(*shape)
        else:
            self._host = np.empty(shape, np.float32)
        if have:
            self._host[:, :have] = old[:, :have]
        self._whole = torch.from_numpy(self._host)

    @contextmanager
    def attached(self, prompt_len: int, max_new_tokens: int | None = None):
        """Hooks on for one ``generate`` call over prompts left-padded to ``prompt_len`` (``max_new_tokens``
        sizes the features buffer, which grows when needed); on a normal exit every step scored so far has
        its record in :attr:`records`."""
        if self.offload and (self._process is None or not self._process.alive):
            self._process, self._host = _ScoringProcess(self.head), None  # (again, after a failure)
        self.prompt_len = prompt_len
        self._calls = dict.fromkeys(self.head.cfg.hooks, 0)
        self._pending: list[torch.Tensor] = []  # newest-token activations of every hook, in firing order
        self._order: list[str] = []
        self._flushed = 0  # completion tokens already in the features buffer
        self._slots = max_new_tokens or incremental._GROW
        self._start: list[int] = []  # per row: first token of the step being written
        self._prev: list[int] = []  # per row: kind of the newest token at the last callback (see __call__)
        self._n_steps: list[int] = []  # per row: steps scored (or sent to be scored)
        self._enc: IncrementalHead | None = None  # in-process head, made at the first step
        self._sent: deque = deque()  # steps sent to the scoring process: (seq, rows, starts, indices, end)
        self._seq0, self._k = self._seq, 0  # answers numbered below _seq0 belong to an interrupted call
        self._no_stop: torch.Tensor | None = None  # what the stopping criterion returns: never stop
        self.records = []
        with contextlib.ExitStack() as stack:
            if self._process is None:  # NumPy's BLAS would wake its threads for every tiny matmul
                stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
            stack.enter_context(self.model.hooks([(h, self._record) for h in self.head.cfg.hooks]))
            yield self
            while self._sent:  # steps still being scored
                self._collect(block=True)

    # ---- the per-token callback -------------------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        b, k = input_ids.shape[0], input_ids.shape[1] - self.prompt_len  # k completion tokens so far
        self._k = k
        if not self._prev:
            self._start, self._prev, self._n_steps = [0] * b, [0] * b, [0] * b
        if self._sent:
            self._collect(block=False)
        # per row: kind of the newest token (1 boundary, 2 end of sequence) against the token before it, whose
        # features the forward that sampled the newest one has just computed (4: the row has finished)
        kind, ready, prev = self._kind, [], self._prev
        new = [kind[t] for t in input_ids[:, -1].tolist()]
        if k >= 2:  # features exist for completion tokens 0..k-2
            for r, (last, now) in enumerate(zip(prev, new, strict=True)):
                if last | now:
                    if last & 6:  # end of sequence already read
                        new[r] = 4
                    elif last & 1 or now & 2:
                        ready.append(r)
            if ready:
                self._score(ready, k - 1)
        self._prev = new
        if self._no_stop is None or self._no_stop.shape[0] != b:
            self._no_stop = torch.zeros(b, dtype=torch.bool, device=input_ids.device)
        return self._no_stop

    def _score(self, rows: list[int], end: int) -> None:
        """Score the step ``start[r]:end`` of every row in ``rows`` with one batched head call (in this
        process, or sent to the scoring process)."""
        self._flush()
        starts = [self._start[r] for r in rows]
        indices = [self._n_steps[r] for r in rows]
        for r in rows:
            self._n_steps[r] += 1
            self._start[r] = end
        if self._process is not None:
            if self._seq == self._seq0:
                self._process.reset(self._host.shape[0])
            self._process.send(self._seq, rows, starts, end)
            self._sent.append((self._seq, rows, starts, indices, end))
            self._seq += 1
            return
        if self._enc is None:
            self._local = self._local or head_weights(self.head)
            self._enc = IncrementalHead(*self._local, self._host.shape[0])
        feats = step_features(self._host, rows, starts, end)
        lengths = [end - s for s in starts]
        self._add_records(rows, starts, indices, end, self._enc.step_logits(rows, feats, lengths))

    def _collect(self, block: bool) -> None:
        """Records for the answers of the scoring process that have arrived (with ``block``: at least one)."""
        for seq, logits in self._process.results(block):
            if seq < self._seq0:
                continue  # a step of a generate call that raised before its scores were collected
            sent_seq, rows, starts, indices, end = self._sent.popleft()
            if seq != sent_seq:
                raise RuntimeError(f"live scoring process answered step batch {seq}, expected {sent_seq}")
            self._add_records(rows, starts, indices, end, logits)

    def _add_records(self, rows, starts, indices, end, logits) -> None:
        new = [
            {"row": r, "step_index": i, "token_start": s, "token_end": end, "head_score": logit,
             "scored_after_tokens": max(self._k, end + 1)}
            for r, s, i, logit in zip(rows, starts, indices, logits, strict=True)
        ]  # fmt: skip
        self.records.extend(new)
        self.on_records(new)

    def on_records(self, records: list[dict]) -> None:
        """Called with the new records each time steps are scored (a hook for subclasses; does nothing)."""


@dataclass(frozen=True, kw_only=True)
class LiveResult:
    completions: list[str]
    """The generated text of each prompt (cut at end-of-sequence)."""
    steps: pd.DataFrame
    """One row per scored step: ``row, step_index, token_start, token_end, head_score, head_prob,
    scored_after_tokens`` (completion tokens sampled when the score was ready), ``text``."""


def generate_with_scorer(model, scorer: LiveStepScorer, batch, config: GenerationConfig) -> torch.Tensor:
    """``model.generate`` over a left-padded ``batch`` (:func:`~workbench.traces.generate.left_pad`) with
    ``scorer`` attached, seeded like one batch of :func:`~workbench.traces.generate.sample_completions`;
    returns the generated ids (prompt included). Every step's record is in ``scorer.records`` when it returns."""
    tok = model.tokenizer
    kwargs = config.hf_kwargs() | {"eos_token_id": tok.eos_token_id, "use_cache": True}
    with scorer.attached(batch.input_ids.shape[1], config.max_new_tokens), batch_seed(model.device, config.seed):
        return model.generate(*batch, stopping_criteria=StoppingCriteriaList([scorer]), **kwargs)


def generate_scored(
    model,
    head: UncertaintyHead,
    prompts: Sequence[str],
    config: GenerationConfig | None = None,
    *,
    scorer: LiveStepScorer | None = None,
) -> LiveResult:
    """Generate for ``prompts`` in one batch and score every step as it is written (see module docstring).

    ``scorer``: a :class:`LiveStepScorer` of ``head`` to reuse (its scoring process, if any, is started
    once); None makes one for this call and stops it afterwards.

    Sampling is seeded by :func:`~workbench.traces.generate.batch_seed` exactly like one batch of
    :func:`workbench.traces.generate.sample_completions`, so the same call without the scorer gives the
    same tokens (the overhead benchmark compares the two).
    """
    if scorer is not None and scorer.head is not head:
        raise ValueError("scorer: it was made for a different head; pass LiveStepScorer(model, head)")
    config = config or GenerationConfig()
    tok = model.tokenizer
    ids = tok(list(prompts), add_special_tokens=False)["input_ids"]
    batch = left_pad(ids, tok.pad_token_id)
    own = scorer is None
    scorer = scorer or LiveStepScorer(model, head)
    try:
        out = generate_with_scorer(model, scorer, batch, config)
    finally:
        if own:
            scorer.close()
    gen = out[:, batch.input_ids.shape[1] :].cpu()
    texts = []
    for row in gen.tolist():
        end = row.index(tok.eos_token_id) if tok.eos_token_id in row else len(row)
        texts.append(tok.decode(row[:end]))
    steps = pd.DataFrame(scorer.records)
    if len(steps):
        steps["head_prob"] = torch.sigmoid(torch.tensor(steps["head_score"].to_numpy())).numpy()
        spans = steps[["row", "token_start", "token_end"]].itertuples(index=False)
        steps["text"] = [tok.decode(gen[r, a:b].tolist()).strip() for r, a, b in spans]
    return LiveResult(completions=texts, steps=steps)
