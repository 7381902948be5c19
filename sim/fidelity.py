"""Fidelity metrics of a quantised network against its float model, per evaluation sample.

A :class:`SampleMetric` keeps, for every evaluation sample ``i`` (image, sentence, text
window), a numerator ``num[i]`` and a denominator ``den[i]``; the metric is
``T(sum num / sum den)`` (:mod:`lowbit.sim.stats`: ``ratio``, ``exp`` or ``db``), so means,
rates, perplexities and energy ratios all resample the same way and carry a bootstrap interval.

Definitions (``p`` = float model's output distribution, ``q`` = quantised model's, natural
logarithms):

* ``kl`` -- mean ``KL(p || q) = sum_c p_c (log p_c - log q_c)`` per prediction (nats), from
  log-softmax of the logits in float64. Lower is better; 0 = same distribution.
* ``agreement`` -- fraction of predictions whose arg-max (top-1 class / next token / nearest
  neighbour) equals the float model's. Ties in the float output break to the lowest index, as
  ``numpy.argmax``.
* ``sqnr`` -- output SQNR in dB: ``10 log10(sum ||y_float||^2 / sum ||y_q - y_float||^2)`` over
  all output elements of the resampled samples (a ratio of sums, not a mean of per-sample dB);
  ``+inf`` when the outputs are identical.
* ``perplexity`` -- ``exp(sum NLL / sum tokens)`` of the next-token targets.
* ``top1`` / ``accuracy`` -- fraction of correct arg-max predictions against labels.
* ``cosine`` -- mean cosine similarity of each embedding with its float embedding.
* ``recall@k`` -- mean over queries of ``|N_k(q) & N_k(float)| / k`` where ``N_k`` are the k
  nearest neighbours by cosine similarity among the other evaluation items (the query itself
  excluded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import stats


@dataclass(frozen=True)
class SampleMetric:
    """Per-sample numerators / denominators of one metric (see module docstring)."""

    name: str
    num: np.ndarray
    den: np.ndarray
    transform: str = "ratio"
    higher_is_better: bool = True
    unit: str = ""
    description: str = ""

    def __post_init__(self):
        num = np.asarray(self.num, np.float64).reshape(-1)
        den = np.asarray(self.den, np.float64).reshape(-1)
        if num.shape != den.shape:
            raise ValueError(f"{self.name}: num {num.shape} and den {den.shape} differ")
        if self.transform not in stats.TRANSFORMS:
            raise ValueError(f"{self.name}: transform {self.transform!r}; allowed: "
                             f"{', '.join(stats.TRANSFORMS)}")
        object.__setattr__(self, "num", num)
        object.__setattr__(self, "den", den)

    @property
    def n(self) -> int:
        return len(self.num)

    @property
    def value(self) -> float:
        return stats.point_value(self.num, self.den, self.transform)

    def ci(self, level: float = stats.LEVEL) -> tuple[float, float]:
        return stats.ci(self.num, self.den, self.transform, level)

    def summary(self) -> dict:
        """``{"value", "lo", "hi", "n", "unit", "higher_is_better", "description"}``."""
        lo, hi = self.ci()
        return {"value": self.value, "lo": lo, "hi": hi, "n": self.n, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "transform": self.transform,
                "description": self.description}

    def to_json(self) -> dict:
        return {"name": self.name, "num": self.num.tolist(), "den": self.den.tolist(),
                "transform": self.transform, "higher_is_better": self.higher_is_better,
                "unit": self.unit, "description": self.description}

    @classmethod
    def from_json(cls, d: dict) -> SampleMetric:
        return cls(d["name"], np.asarray(d["num"], np.float64), np.asarray(d["den"], np.float64),
                   d.get("transform", "ratio"), bool(d.get("higher_is_better", True)),
                   d.get("unit", ""), d.get("description", ""))

    def compare(self, other: SampleMetric) -> dict:
        """Paired bootstrap of ``self - other`` (same samples), see :mod:`lowbit.sim.stats`."""
        if self.transform != other.transform:
            raise ValueError(f"cannot compare {self.name} ({self.transform}) with "
                             f"{other.name} ({other.transform})")
        return stats.paired_difference((self.num, self.den), (other.num, other.den),
                                       self.transform)


def _per_sample(x, n):
    """Sum an array over all axes but the first (n samples)."""
    return np.asarray(x, np.float64).reshape(n, -1).sum(axis=1)


def log_softmax(z, axis=-1):
    z = np.asarray(z, np.float64)
    m = np.max(z, axis=axis, keepdims=True)
    s = z - m
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


def kl_metric(ref_logits, logits, name: str = "kl") -> SampleMetric:
    """Mean KL(float || quantised) per prediction; logits (n, [positions,] classes)."""
    ref_logits, logits = np.asarray(ref_logits), np.asarray(logits)
    lp, lq = log_softmax(ref_logits), log_softmax(logits)
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        kl = np.sum(np.where(p > 0, p * (lp - lq), 0.0), axis=-1)
    n = ref_logits.shape[0]
    return SampleMetric(name, _per_sample(kl, n), _per_sample(np.ones_like(kl), n), "ratio",
                        False, "nats", "KL(float || quantised) per prediction")


def agreement_metric(ref_out, out, name: str = "agreement", what: str = "top-1") -> SampleMetric:
    """Fraction of arg-max predictions equal to the float model's; (n, [positions,] classes)."""
    ref_out, out = np.asarray(ref_out), np.asarray(out)
    eq = (np.argmax(ref_out, -1) == np.argmax(out, -1)).astype(np.float64)
    n = ref_out.shape[0]
    return SampleMetric(name, _per_sample(eq, n), _per_sample(np.ones_like(eq), n), "ratio",
                        True, "fraction", f"{what} agreement with the float model")


def sqnr_metric(ref_out, out, name: str = "sqnr") -> SampleMetric:
    """Output SQNR (dB) as a ratio of summed signal and noise energies over samples."""
    ref_out = np.asarray(ref_out, np.float64)
    err = np.asarray(out, np.float64) - ref_out
    n = ref_out.shape[0]
    return SampleMetric(name, _per_sample(ref_out * ref_out, n), _per_sample(err * err, n), "db",
                        True, "dB", "output SQNR vs the float model: 10 log10(sum y^2 / sum "
                        "(y_q - y)^2)")


def accuracy_metric(logits, labels, name: str = "top1") -> SampleMetric:
    """Top-1 accuracy against labels; logits (n, [positions,] classes), labels (n, [positions])."""
    logits = np.asarray(logits)
    ok = (np.argmax(logits, -1) == np.asarray(labels)).astype(np.float64)
    n = logits.shape[0]
    return SampleMetric(name, _per_sample(ok, n), _per_sample(np.ones_like(ok), n), "ratio", True,
                        "fraction", "top-1 accuracy against the labels")


def perplexity_metric(logits, targets, name: str = "perplexity") -> SampleMetric:
    """exp(mean next-token NLL); logits (n, T, vocab), integer targets (n, T)."""
    lq = log_softmax(logits)
    t = np.asarray(targets, np.int64)
    nll = -np.take_along_axis(lq, t[..., None], axis=-1)[..., 0]
    n = lq.shape[0]
    return SampleMetric(name, _per_sample(nll, n), _per_sample(np.ones_like(nll), n), "exp",
                        False, "", "perplexity exp(mean NLL per token)")


def cosine_metric(emb, ref_emb, name: str = "cosine") -> SampleMetric:
    """Mean cosine similarity of each row of ``emb`` with the same row of ``ref_emb``."""
    e, r = np.asarray(emb, np.float64), np.asarray(ref_emb, np.float64)
    cos = np.sum(e * r, 1) / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(r, axis=1),
                                        1e-300)
    return SampleMetric(name, cos, np.ones_like(cos), "ratio", True, "",
                        "mean cosine similarity with the float embedding")


def cosine_matrix(emb) -> np.ndarray:
    """(n, n) cosine similarities with the diagonal set to -inf (an item is not its own
    neighbour)."""
    e = np.asarray(emb, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-300)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return s


def topk_neighbours(sim, k: int) -> np.ndarray:
    """(n, k) indices of the k largest similarities per row, ties to the lower index."""
    order = np.argsort(-sim, axis=1, kind="stable")
    return order[:, :k]


def recall_at_k_metric(emb, ref_emb, k: int = 10, name: str | None = None) -> SampleMetric:
    """Mean |N_k(quantised) & N_k(float)| / k over queries (see module docstring)."""
    n = len(emb)
    if not 1 <= k < n:
        raise ValueError(f"recall@k: k={k} must be in [1, {n - 1}] for {n} items")
    a = topk_neighbours(cosine_matrix(emb), k)
    b = topk_neighbours(cosine_matrix(ref_emb), k)
    hits = np.array([len(np.intersect1d(a[i], b[i], assume_unique=True)) for i in range(n)],
                    np.float64)
    return SampleMetric(name or f"recall@{k}", hits / k, np.ones(n), "ratio", True, "fraction",
                        f"recall@{k} of the float model's nearest neighbours (cosine)")


def retrieval_logits(emb, temperature: float) -> np.ndarray:
    """(n, n) logits ``cos(e_i, e_j) / temperature`` over the other items (diagonal -inf):
    the retrieval distribution of a contrastively trained embedding model."""
    return cosine_matrix(emb) / temperature


def metrics_json(metrics: dict) -> tuple[dict, dict]:
    """``({name: summary}, {name: per-sample json})`` of ``{name: SampleMetric}``."""
    return ({k: m.summary() for k, m in metrics.items()},
            {k: m.to_json() for k, m in metrics.items()})
