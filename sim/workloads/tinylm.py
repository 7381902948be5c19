"""``tinylm``: a byte-level decoder-only transformer language model, emulated in numpy.

Network (:mod:`lowbit.sim.workloads.tinylm_torch` defines the same model in PyTorch; weights
``data/tinylm.safetensors`` are trained by ``scripts/train_tinylm.py`` on the training split of
the committed CPython-library corpus, :mod:`lowbit.sim.workloads.pycorpus`)::

    bytes (B, T) -> tok_emb + pos_emb                         d = 256, T = 128
    4 x [ h = rmsnorm(x); q, k, v = split(qkv(h))             qkv: 256 -> 768
          a = softmax(q k^T / sqrt(32) + causal mask) v       8 heads of 32
          x += proj(a)                                        proj: 256 -> 256
          x += fc2(gelu(fc1(rmsnorm(x)))) ]                   fc1: 256 -> 1024, fc2: 1024 -> 256
    head(rmsnorm(x)) -> next-byte logits (256)                head: 256 -> 256

3.31 M parameters (3.21 M in the quantised GEMMs; held-out perplexity 3.59 in float), sized so
that one emulated evaluation of a format takes seconds and the default sweep fits in a few
minutes on two cores. RMSNorm eps 1e-5, exact erf GELU, no biases; softmax, normalisation and
GELU in float64. The dimensions are read from the config stored in the weights file.

Quantised GEMMs: the 17 linear layers ``l{i}.qkv``, ``l{i}.proj``, ``l{i}.fc1``,
``l{i}.fc2`` (i = 0..3) and ``head``, and the attention matmuls: the score GEMM ``q k^T``
(reduction over the 32 dimensions of a head) and the context GEMM ``p v`` (reduction over the
128 key positions) of block i run with both operands in the *activation* format and the
accumulator of layer ``l{i}.qkv``'s config (a layer's config covers the attention that consumes
its outputs; no separate entry, so the search's per-layer costs count the linear layers only).

Evaluation set: 32 windows of 129 bytes evenly spaced over the held-out modules (queue.py,
sched.py, ..., never seen in training); the model predicts bytes 2..129 of each window from
the preceding ones (32 x 128 = 4,096 predictions). Metric ``perplexity`` = exp(mean NLL per
byte) (lower is better); fidelity: KL(float || quantised) per prediction, next-byte top-1
agreement, logit SQNR. One bootstrap sample = one window (a cluster of 128 correlated
predictions). Calibration (GPTQ / SmoothQuant): 32 windows of the training split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..engine import gemm_nt
from ..fidelity import (
    accuracy_metric,
    agreement_metric,
    kl_metric,
    log_softmax,
    perplexity_metric,
    sqnr_metric,
)
from ..operands import prepare
from ..qconfig import QuantConfig
from .base import LayerSpec, LayerwiseWorkload, _Ctx
from .pycorpus import eval_windows, load_corpus

WEIGHTS = Path(__file__).resolve().parent / "data" / "tinylm.safetensors"
N_EVAL, N_CALIB = 32, 32


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def gelu(x):
    """Exact GELU 0.5*x*(1+erf(x/sqrt(2))) (torch.nn.functional.gelu's default)."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def load_weights(path: str | Path = WEIGHTS) -> tuple[dict, dict]:
    """(float32 tensors by flat name, metadata incl. the config) of a tinylm safetensors file."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata() or {})
    return load_file(str(path)), meta


def _causal_softmax(s):
    T = s.shape[-1]
    s = np.where(np.triu(np.ones((T, T), bool), 1), -np.inf, s)
    s = np.exp(s - s.max(-1, keepdims=True))
    return s / s.sum(-1, keepdims=True)


def attention_config(cfg):
    """QuantConfig of the attention matmuls of a block whose ``qkv`` layer has ``cfg``: both
    operands in cfg's activation format, cfg's accumulator (None: float)."""
    if cfg is None:
        return None
    return QuantConfig(weight=cfg.act, act=cfg.act, accum=cfg.accum, dot=cfg.dot)


def batched_matmul_nt(a, b, cfg):
    """``a @ b^T`` per leading index: a (G, R, K), b (G, C, K) -> (G, R, C), operands quantised
    along K per ``cfg`` (float64 einsum when None). Quantisation is per row of K, so each
    operand is prepared once for all G products."""
    if cfg is None:
        return np.einsum("grk,gck->grc", a, b)
    G, R, K = a.shape
    C = b.shape[1]
    A = prepare(a.reshape(G * R, K), cfg.act)
    B = prepare(b.reshape(G * C, K), cfg.weight)
    out = np.empty((G, R, C))
    for g in range(G):  # one emulated GEMM per (window, head)
        out[g] = gemm_nt(A.rows(g * R, (g + 1) * R), B.rows(g * C, (g + 1) * C), cfg.accum,
                         cfg.dot)
    return out


class TinyLM(LayerwiseWorkload):
    name = "tinylm"
    metric_name = "perplexity"
    higher_is_better = False

    def __init__(self, path: str | Path = WEIGHTS, n_eval: int = N_EVAL, n_calib: int = N_CALIB):
        super().__init__()
        self.w, meta = load_weights(path)
        c = json.loads(meta["config"])
        self.d, self.n_layer, self.n_head = c["d_model"], c["n_layer"], c["n_head"]
        self.ctx, self.eps, self.vocab = c["ctx"], c["norm_eps"], c["vocab"]
        self.meta = meta
        train, heldout = load_corpus()
        self.windows = eval_windows(heldout, n_eval, self.ctx + 1).astype(np.int64)
        rng = np.random.default_rng(1)  # calibration windows from the training split
        starts = np.sort(rng.choice(len(train) - self.ctx - 1, n_calib, replace=False))
        self.calib = np.stack([train[s:s + self.ctx] for s in starts]).astype(np.int64)
        import hashlib

        self.version = "1-" + hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]

    def _build_layers(self):
        d, T, out = self.d, self.ctx, []
        for i in range(self.n_layer):
            for nm in ("qkv", "proj", "fc1", "fc2"):
                w = self.w[f"l{i}.{nm}.weight"]
                out.append(LayerSpec(f"l{i}.{nm}", "linear", w, None, macs=int(w.size) * T,
                                     in_shape=(w.shape[1],), out_shape=(w.shape[0],),
                                     attrs={"tokens": T}))
        w = self.w["head.weight"]
        out.append(LayerSpec("head", "linear", w, None, macs=int(w.size) * T, in_shape=(d,),
                             out_shape=(w.shape[0],), attrs={"tokens": T}))
        return out

    def eval_inputs(self):
        return self.windows[:, :-1]

    def eval_targets(self):
        return self.windows[:, 1:]

    def calibration_data(self):
        return self.calib

    def _forward(self, ids, ctx: _Ctx):
        ids = np.asarray(ids, np.int64)
        B, T = ids.shape
        w, d, H = self.w, self.d, self.n_head
        dh = d // H
        x = w["tok_emb.weight"][ids].astype(np.float64) + w["pos_emb.weight"][:T]

        def lin(name, t):
            return self._gemm(name, t.reshape(B * T, -1), ctx).reshape(B, T, -1)

        def heads(t):  # (B, T, d) -> (B*H, T, dh)
            return t.reshape(B, T, H, dh).transpose(0, 2, 1, 3).reshape(B * H, T, dh)

        for i in range(self.n_layer):
            p = f"l{i}."
            qkv = lin(p + "qkv", rmsnorm(x, w[p + "norm1.weight"], self.eps))
            q, k, v = (heads(qkv[..., j * d:(j + 1) * d]) for j in range(3))
            acfg = attention_config(ctx.configs[p + "qkv"])
            s = batched_matmul_nt(q, k, acfg) / np.sqrt(dh)
            a = batched_matmul_nt(_causal_softmax(s), v.transpose(0, 2, 1), acfg)
            a = a.reshape(B, H, T, dh).transpose(0, 2, 1, 3).reshape(B, T, d)
            x = x + lin(p + "proj", a)
            h = gelu(lin(p + "fc1", rmsnorm(x, w[p + "norm2.weight"], self.eps)))
            x = x + lin(p + "fc2", h)
        return lin("head", rmsnorm(x, w["norm_f.weight"], self.eps))

    def _metric(self, out, ref_out):
        m = perplexity_metric(out, self.eval_targets())
        return {"metric": m.value, "nll": float(np.log(m.value)),
                "n_eval": int(self.windows.shape[0]), "n_predictions": int(m.den.sum())}

    def fidelity(self, out, ref_out) -> dict:
        return {"perplexity": perplexity_metric(out, self.eval_targets()),
                "kl": kl_metric(ref_out, out), "agreement": agreement_metric(
                    ref_out, out, what="next-byte top-1"),
                "sqnr": sqnr_metric(ref_out, out),
                "accuracy": accuracy_metric(out, self.eval_targets(), "accuracy")}

    def assumptions(self) -> list[str]:
        n, t = self.windows.shape[0], self.ctx
        return [f"Evaluation set: {n} windows of {t + 1} bytes from held-out CPython modules "
                f"({n * t} next-byte predictions); one bootstrap sample = one window. "
                "Attention matmuls (q k^T, p v) run in the activation format and accumulator "
                "of their block's qkv layer."]

    def logprobs(self, configs=None, quantizer: str = "rtn") -> np.ndarray:
        """(n_eval, T, 256) next-byte log-probabilities on the evaluation windows."""
        return log_softmax(self.forward(self.eval_inputs(), configs, quantizer))
