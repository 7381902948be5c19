"""``digits-cnn``: a small CNN on scikit-learn's bundled 8x8 digits (the default workload).

Network (weights in ``data/digits_cnn.npz``, trained by ``scripts/train_digits_cnn.py``)::

    x (N, 1, 8, 8) in [0, 1]
    conv1  1->16, 3x3, stride 1, pad 1 -> ReLU
    conv2 16->32, 3x3, stride 1, pad 1 -> ReLU -> 2x2 max-pool   (N, 32, 4, 4)
    flatten (C, H, W order)                                        (N, 512)
    fc1   512->64 -> ReLU
    fc2    64->10 -> logits

Metric: top-1 accuracy on the fixed held-out split (450 images; ``train_test_split(
test_size=0.25, random_state=0, stratify=y)``). Calibration data: the first 256 training images.

Convolutions run as GEMMs over im2col patches (rows = N*H*W output pixels, K = 3*3*C in
(kh, kw, c) order, as ``lowbit.sim.gemm.qconv2d``), so block formats put their blocks along the reduction axis, like an
implicit-GEMM accelerator. :meth:`DigitsCNN.loss_and_grads` is an analytic backward pass
(straight-through estimator: quantisers pass gradients unchanged; the products use the
quantised operands).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ..fidelity import accuracy_metric, agreement_metric, kl_metric, sqnr_metric
from ..quantizers.compose import parse_quantizer
from .base import LayerSpec, LayerwiseWorkload, _Ctx

DATA = Path(__file__).resolve().parent / "data" / "digits_cnn.npz"
_N_CALIB = 256


def _digits_csv() -> Path:
    """scikit-learn's bundled ``digits.csv.gz`` (found without importing sklearn, which is slow)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("digits-cnn needs scikit-learn's bundled digits data: pip install scikit-learn")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"


@lru_cache(maxsize=1)
def load_digits_arrays():
    """All 1797 digits: x float64 (N, 1, 8, 8) in [0, 1] (pixel / 16), y int64 — the same
    arrays as ``sklearn.datasets.load_digits()`` (``images / 16``, ``target``)."""
    data = np.loadtxt(_digits_csv(), delimiter=",")
    x = (data[:, :-1].astype(np.float32) / 16.0).reshape(-1, 1, 8, 8).astype(np.float64)
    return x, data[:, -1].astype(np.int64)


@lru_cache(maxsize=1)
def load_digits_split(path: str | Path = DATA):
    """(x_train, y_train, x_test, y_test) using the split indices committed with the weights
    (``train_idx`` / ``test_idx`` = ``train_test_split(arange(1797), test_size=0.25,
    random_state=0, stratify=y)``; a test re-derives them with scikit-learn)."""
    x, y = load_digits_arrays()
    with np.load(path) as z:
        tr, te = z["train_idx"], z["test_idx"]
    return x[tr], y[tr], x[te], y[te]


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """NCHW -> (N*Ho*Wo, kh*kw*C) patches in (kh, kw, c) order (channels fastest, the order of
    ``lowbit.sim.gemm.im2col``); returns (cols, Ho, Wo)."""
    n, c, _, _ = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, kh, kw)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 4, 5, 1).reshape(n * ho * wo, kh * kw * c)
    return cols, ho, wo


def col2im(dcols, x_shape, kh, kw, stride=1, padding=0):
    """Adjoint of :func:`im2col`: scatter-add (N*Ho*Wo, kh*kw*C) back to NCHW."""
    n, c, h, w = x_shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    d = dcols.reshape(n, ho, wo, kh, kw, c)
    out = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(kh):  # kh*kw vectorised slab adds, no per-element loop
        for j in range(kw):
            out[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += d[
                :, :, :, i, j, :
            ].transpose(0, 3, 1, 2)
    return out[:, :, padding:padding + h, padding:padding + w]


def _maxpool2(x):
    n, c, h, w = x.shape
    v = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return v.max(axis=(3, 5))


class DigitsCNN(LayerwiseWorkload):
    name = "digits-cnn"
    metric_name = "top1"

    def __init__(self, params: dict | None = None, path: str | Path = DATA):
        super().__init__()
        self.path = str(path)  # also the source of the committed train/test split indices
        if params is None:
            with np.load(path) as z:
                params = {k: z[k] for k in z.files}
        self.params = {k: np.asarray(v) for k, v in params.items()}
        self.committed_accuracy = (
            float(self.params.pop("test_accuracy")) if "test_accuracy" in self.params else None
        )
        self.params.pop("train_idx", None)
        self.params.pop("test_idx", None)
        import hashlib

        h = hashlib.sha256()
        for k in sorted(self.params):
            h.update(k.encode() + np.ascontiguousarray(self.params[k]).tobytes())
        self.version = "1-" + h.hexdigest()[:10]

    # -- layers --------------------------------------------------------------------------
    def _build_layers(self):
        p = self.params
        conv = dict(stride=1, padding=1)
        return [
            LayerSpec("conv1", "conv2d", p["conv1.weight"], p["conv1.bias"],
                      macs=16 * 9 * 64, in_shape=(1, 8, 8), out_shape=(16, 8, 8), attrs=conv),
            LayerSpec("conv2", "conv2d", p["conv2.weight"], p["conv2.bias"],
                      macs=32 * 16 * 9 * 64, in_shape=(16, 8, 8), out_shape=(32, 8, 8),
                      attrs=conv),
            LayerSpec("fc1", "linear", p["fc1.weight"], p["fc1.bias"],
                      macs=512 * 64, in_shape=(512,), out_shape=(64,)),
            LayerSpec("fc2", "linear", p["fc2.weight"], p["fc2.bias"],
                      macs=64 * 10, in_shape=(64,), out_shape=(10,)),
        ]

    def eval_inputs(self):
        return load_digits_split(self.path)[2]

    def eval_labels(self):
        return load_digits_split(self.path)[3]

    def calibration_data(self):
        return load_digits_split(self.path)[0][:_N_CALIB]

    def _metric(self, out, ref_out):
        y = self.eval_labels()
        pred, ref_pred = out.argmax(1), ref_out.argmax(1)
        return {
            "metric": float(np.mean(pred == y)),
            "agreement": float(np.mean(pred == ref_pred)),
            "n_eval": int(len(y)),
        }

    def fidelity(self, out, ref_out) -> dict:
        """Per-image top-1 accuracy, KL(float || quantised) of the softmax outputs, top-1
        agreement with the float model and logit SQNR (one sample = one test image)."""
        return {"top1": accuracy_metric(out, self.eval_labels()),
                "kl": kl_metric(ref_out, out), "agreement": agreement_metric(ref_out, out),
                "sqnr": sqnr_metric(ref_out, out)}

    def assumptions(self) -> list[str]:
        return [f"Evaluation set: the {len(self.eval_labels())} held-out images of scikit-learn's "
                "8x8 digits (stratified 25% split, random_state=0); calibration: the first "
                f"{_N_CALIB} training images. One bootstrap sample = one image."]

    def fp32_accuracy(self) -> float:
        return float(self.reference()["metric"]["metric"])

    # -- forward / backward --------------------------------------------------------------
    def _conv(self, name, x, ctx, cache=None):
        n = x.shape[0]
        cols, ho, wo = im2col(x, 3, 3, 1, 1)
        y = self._gemm(name, cols, ctx)  # (N*Ho*Wo, O)
        if cache is not None:
            cache[name] = (cols, x.shape)
        return y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)

    def _forward(self, x, ctx: _Ctx, cache=None):
        x = np.asarray(x, np.float64)
        a1 = np.maximum(self._conv("conv1", x, ctx, cache), 0)
        z2 = self._conv("conv2", a1, ctx, cache)
        a2 = np.maximum(z2, 0)
        p2 = _maxpool2(a2)
        f = p2.reshape(p2.shape[0], -1)
        z3 = self._gemm("fc1", f, ctx)
        a3 = np.maximum(z3, 0)
        logits = self._gemm("fc2", a3, ctx)
        if cache is not None:
            cache.update(a1=a1, a2=a2, p2=p2, a3=a3)
        return logits

    def loss_and_grads(self, x, y, configs=None, quantizer: str = "rtn") -> dict:
        """Mean cross-entropy of the (quantised) network on ``(x, y)`` and its gradients.

        Returns ``{"loss": float, "logits": (N, 10), "weight_grads": {layer: dL/dW (weight
        shape)}, "bias_grads": {layer: dL/db}, "output_grads": {layer: dL/d(GEMM output)
        (N*pixels, M)}}``. Straight-through estimator for every quantiser; the GEMMs of the
        backward pass are float64 with the quantised forward operands (x_q, W_q).
        """
        q = parse_quantizer(quantizer)
        if q.alpha is not None or q.rotation is not None:
            raise ValueError(f"loss_and_grads: quantizer {q.name!r} transforms the layers; "
                             "gradients are defined for rtn / gptq / mrgptq only")
        cfgs = self.layer_configs(configs)
        wq = self.quantized_weights(cfgs, quantizer)
        cap: dict = {}
        cache: dict = {}
        ctx = _Ctx(cfgs, wq, cap)
        logits = self._forward(x, ctx, cache)
        y = np.asarray(y)
        n = logits.shape[0]
        z = logits - logits.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        loss = float(-logp[np.arange(n), y].mean())
        d = np.exp(logp)
        d[np.arange(n), y] -= 1.0
        d /= n
        def xq(name):  # the activation operand the forward GEMM actually multiplied
            return cap[name]["input_q"]

        w = {k: v.values for k, v in wq.items()}
        wg, bg, og = {}, {}, {}
        og["fc2"] = d
        wg["fc2"], bg["fc2"] = d.T @ xq("fc2"), d.sum(0)
        d = (d @ w["fc2"]) * (cache["a3"] > 0)
        og["fc1"] = d
        wg["fc1"], bg["fc1"] = d.T @ xq("fc1"), d.sum(0)
        d = (d @ w["fc1"]).reshape(cache["p2"].shape)
        # max-pool: route to the (first) arg-max of each 2x2 window
        a2 = cache["a2"]
        nn_, c, h, w_ = a2.shape
        win = a2.reshape(nn_, c, h // 2, 2, w_ // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        win = win.reshape(nn_, c, h // 2, w_ // 2, 4)
        onehot = np.eye(4)[win.argmax(-1)] * d[..., None]
        d = onehot.reshape(nn_, c, h // 2, w_ // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        d = d.reshape(a2.shape) * (a2 > 0)
        for name, prev in (("conv2", "a1"), ("conv1", None)):
            dy = d.transpose(0, 2, 3, 1).reshape(-1, d.shape[1])
            og[name] = dy
            spec = self.layer(name)
            wg[name] = spec.grad_from_2d(dy.T @ xq(name))
            bg[name] = dy.sum(0)
            if prev is not None:
                dcols = dy @ w[name]
                d = col2im(dcols, cache[name][1], 3, 3, 1, 1) * (cache[prev] > 0)
        return {"loss": loss, "logits": logits, "weight_grads": wg, "bias_grads": bg,
                "output_grads": og}
