"""The incremental head: an uncertainty head's causal encoder run step by step in NumPy, in-process or in a
scoring process of its own.

Live scoring (:mod:`workbench.heads.live`) needs the head's score for each step the moment it is written.
The head is causal, so the encoder outputs of earlier tokens never change: scoring a new step only runs its
own tokens through the head, against cached keys and values. For the few tokens of one step the cost is
per-operation overhead, which is lower in NumPy than in torch.

This module imports only NumPy, SciPy and the standard library, so it also runs as a **scoring process**
(``python incremental.py``, started by :class:`~workbench.heads.live.LiveStepScorer`): the generating process
sends each completed step's features over a pipe and keeps generating while another CPU core scores them.

The features themselves never travel through the pipe: the generating process's hooks write each new
token's features straight into a float32 file ``[batch, slots, features]`` in shared memory (``/dev/shm``)
that the scoring process maps too, so a message only says which rows' steps to score. Wire format
(little-endian; the parent writes to the process's stdin, reads its stdout):

- start-up: ``u32`` length + JSON config, ``u64`` length + ``.npz`` of the weight arrays (no pickles);
  the process answers ``b"K"``;
- ``b"M"`` + ``i32`` batch, slots + ``u32`` length + path: map the features file (and unlink it: both
  processes keep their mapping until a grown file replaces it);
- ``b"R"`` + ``i32`` batch: a new generation of ``batch`` rows (empty caches);
- ``b"S"`` + ``i32`` sequence number, rows, end + the rows and their steps' first tokens (``i32`` each):
  score tokens ``start:end`` of each row → ``b"S"`` + ``i32`` sequence number, rows + the logits (``f64``);
- ``b"Q"``: quit. Any error → ``b"E"`` + ``u32`` length + message, and the process exits.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys

import numpy as np
from jaxtyping import Float
from scipy.special import erf

__all__ = ["IncrementalHead", "step_features", "serve"]

_GROW = 64
"""Token slots the feature buffer and the key/value caches start with (they double when full)."""


def with_room(a: np.ndarray | None, length: int, shape: tuple[int, int]) -> np.ndarray:
    """``a`` (``[batch, slots, dim]``, or None for a new zero array of ``shape``) with at least ``length`` slots,
    grown by doubling (at least ``_GROW``); the slots already there keep their values."""
    cap = 0 if a is None else a.shape[1]
    if length <= cap:
        return a
    grown = np.zeros((shape[0], max(length, 2 * cap, _GROW), shape[1]), np.float32)
    if cap:
        grown[:, :cap] = a
    return grown


def step_features(
    buf: Float[np.ndarray, "batch slot feat"], rows: list[int], starts: list[int], end: int
) -> Float[np.ndarray, "tok feat"]:
    """Tokens ``starts[i]:end`` of each row ``rows[i]`` of ``buf`` (``[batch, slots, feature]``), back to back."""
    tok_row = [r for r, s in zip(rows, starts, strict=True) for _ in range(end - s)]
    tok = [j for s in starts for j in range(s, end)]
    return buf[tok_row, tok]


def _standardise(x: np.ndarray, eps: float) -> np.ndarray:
    """``(x − mean) / sqrt(var + eps)`` over the last axis (``nn.LayerNorm`` without its affine part)."""
    d = x - x.mean(-1, keepdims=True)
    d /= np.sqrt((d * d).mean(-1, keepdims=True) + eps)
    return d


def _gelu(x: np.ndarray) -> np.ndarray:
    """``nn.GELU()`` (the exact, erf form)."""
    return 0.5 * x * (1.0 + erf(x * np.float32(0.7071067811865476)))


class IncrementalHead:
    """The causal encoder of every row of a batch, run step by step with a key/value cache per layer.

    ``config``: ``width, n_heads, n_layers, max_len, max_in_step, pool`` and the layer norms' ``eps``
    (``eps1``/``eps2`` per layer, ``out_eps``); ``weights``: the arrays :func:`workbench.heads.live.head_weights`
    makes — the head's projection with its input standardisation folded in, every layer norm's scale and
    shift folded into the matrix after it, each ``nn.Linear`` as ``x @ W + b``.

    All rows whose step completed at the same token are scored in one call: the token-wise parts run on
    exactly their new tokens, attention pads them to the longest (padding writes cache slots the row's next
    step overwrites before anyone reads them, and its outputs are dropped). It mirrors
    ``nn.TransformerEncoderLayer`` (``norm_first=True``, ReLU feed-forward, eval mode),
    :func:`~workbench.heads.model.pool_steps` and the output MLP; the live-vs-offline test checks that the
    scores agree for every pooling.
    """

    def __init__(self, config: dict, weights: dict[str, np.ndarray], batch: int) -> None:
        self.cfg, self.wt = config, weights
        self.w, self.nh, self.batch = config["width"], config["n_heads"], batch
        self.n_layers = config["n_layers"]
        self.keys: list[np.ndarray | None] = [None] * self.n_layers
        self.values: list[np.ndarray | None] = [None] * self.n_layers
        self.n = [0] * batch  # tokens encoded so far, per row
        self.scale = np.float32(1.0 / np.sqrt(self.w // self.nh))

    def _reserve(self, length: int) -> None:
        for cache in (self.keys, self.values):
            for i, c in enumerate(cache):
                cache[i] = with_room(c, length, (self.batch, self.w))

    def step_logits(self, rows: list[int], feats: Float[np.ndarray, "tok feat"], lengths: list[int]) -> list[float]:
        """Encode one new step per row (``feats``: ``[tokens, features]``, the rows' new tokens back to back)
        and return each row's logit."""
        cfg, wt, w, nh = self.cfg, self.wt, self.w, self.nh
        r_, t = len(rows), max(lengths)
        starts = np.cumsum([0, *lengths[:-1]])
        seg = np.repeat(np.arange(r_), lengths)
        inner = np.arange(len(seg)) - starts[seg]
        n0 = np.array([self.n[r] for r in rows])
        pos = n0[seg] + inner
        top = int(pos.max()) + 1
        if top > cfg["max_len"]:
            raise ValueError(f"a trace has {top} step tokens; this head covers max_len={cfg['max_len']}")
        self._reserve(int(n0.max()) + t)
        rows_a = np.asarray(rows)
        tok_row = rows_a[seg]
        slot = seg * t + inner
        x = _gelu(feats @ wt["p0_w"] + wt["p0_b"]) @ wt["p1_w"] + wt["p1_b"]
        x = x + wt["in_step"][np.minimum(inner, cfg["max_in_step"] - 1)] + wt["pos"][pos]
        may_see = np.arange(top)[None, None, None, :] <= (n0[:, None] + np.arange(t))[:, None, :, None]
        for i in range(self.n_layers):
            L = f"L{i}."
            qkv = _standardise(x, cfg["eps1"][i]) @ wt[L + "qkv_w"] + wt[L + "qkv_b"]
            q, k, v = qkv[:, :w], qkv[:, w : 2 * w], qkv[:, 2 * w :]
            self.keys[i][tok_row, pos] = k
            self.values[i][tok_row, pos] = v
            qp = np.zeros((r_ * t, w), np.float32)
            qp[slot] = q
            qh = qp.reshape(r_, t, nh, -1).transpose(0, 2, 1, 3)
            kh = self.keys[i][rows_a, :top].reshape(r_, top, nh, -1).transpose(0, 2, 3, 1)
            vh = self.values[i][rows_a, :top].reshape(r_, top, nh, -1).transpose(0, 2, 1, 3)
            s = np.where(may_see, (qh @ kh) * self.scale, np.float32(-np.inf))
            e = np.exp(s - s.max(-1, keepdims=True))
            o = (e / e.sum(-1, keepdims=True)) @ vh  # [row, head, tok, dh]
            x = x + o.transpose(0, 2, 1, 3).reshape(r_ * t, w)[slot] @ wt[L + "o_w"] + wt[L + "o_b"]
            ff = np.maximum(_standardise(x, cfg["eps2"][i]) @ wt[L + "f1_w"] + wt[L + "f1_b"], 0)
            x = x + ff @ wt[L + "f2_w"] + wt[L + "f2_b"]
        if cfg["pool"] == "mean":
            pooled = np.add.reduceat(x, starts, axis=0) / np.asarray(lengths, np.float32)[:, None]
        elif cfg["pool"] == "max":
            pooled = np.maximum.reduceat(x, starts, axis=0)
        else:
            a = x @ wt["pool_w"] + wt["pool_b"]
            e = np.exp(a - np.maximum.reduceat(a, starts)[seg])
            pooled = np.add.reduceat(x * (e / np.add.reduceat(e, starts)[seg])[:, None], starts, axis=0)
        h = _gelu(_standardise(pooled, cfg["out_eps"]) @ wt["o1_w"] + wt["o1_b"])
        logits = h @ wt["o2_w"] + wt["o2_b"]
        for r, m in zip(rows, lengths, strict=True):
            self.n[r] += m
        return logits[:, 0].tolist()


def pack_weights(config: dict, weights: dict[str, np.ndarray]) -> bytes:
    """The start-up message of a scoring process: config as JSON, weights as ``.npz`` (no pickles)."""
    cfg = json.dumps(config).encode()
    buf = io.BytesIO()
    np.savez(buf, **weights)
    blob = buf.getvalue()
    return struct.pack("<I", len(cfg)) + cfg + struct.pack("<Q", len(blob)) + blob


def _read(stream, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError("the live scorer closed the pipe")
    return data


def serve(stdin=None, stdout=None) -> None:
    """The scoring process's loop (see the module docstring for the wire format)."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    try:
        (n,) = struct.unpack("<I", _read(stdin, 4))
        config = json.loads(_read(stdin, n))
        (n,) = struct.unpack("<Q", _read(stdin, 8))
        with np.load(io.BytesIO(_read(stdin, n)), allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
        n_feats = weights["p0_w"].shape[0]
        stdout.write(b"K")
        stdout.flush()
        enc, buf = None, None
        while True:
            op = stdin.read(1)
            if op in (b"", b"Q"):
                return
            if op == b"M":
                batch, slots, n = struct.unpack("<2iI", _read(stdin, 12))
                path = _read(stdin, n).decode()
                buf = np.memmap(path, np.float32, "r", shape=(batch, slots, n_feats))
                os.unlink(path)
            elif op == b"R":
                (batch,) = struct.unpack("<i", _read(stdin, 4))
                enc = IncrementalHead(config, weights, batch)
            elif op == b"S":
                seq, r, end = struct.unpack("<3i", _read(stdin, 12))
                ints = np.frombuffer(_read(stdin, 8 * r), "<i4").tolist()
                if enc is None or buf is None:
                    raise RuntimeError("a step arrived before the generation's reset and features file")
                rows, starts = ints[:r], ints[r:]
                feats = step_features(buf, rows, starts, end)
                logits = enc.step_logits(rows, feats, [end - s for s in starts])
                stdout.write(b"S" + struct.pack("<2i", seq, r) + np.asarray(logits, "<f8").tobytes())
                stdout.flush()
            else:
                raise RuntimeError(f"unknown message {op!r}")
    except EOFError:
        return
    except Exception as err:  # reported to the generating process, which raises it
        msg = f"{type(err).__name__}: {err}".encode()
        stdout.write(b"E" + struct.pack("<I", len(msg)) + msg)
        stdout.flush()


if __name__ == "__main__":
    serve()
