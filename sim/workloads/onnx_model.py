"""``OnnxWorkload``: an ONNX model run by onnx's numpy reference runtime with its GEMMs
(``MatMul`` / ``Gemm`` / ``Conv`` with a constant weight) replaced by lowbit's.

Runtime: ``onnx.reference.ReferenceEvaluator(model, new_ops=[MatMul, Gemm, Conv])`` (the
``onnx`` extra).  Every other operator is onnx's own numpy implementation; an operator it has no
implementation for raises ValueError naming the node and its op type.  Inputs are fed as
float64 (the built-in workloads evaluate float32 weights in float64); numpy promotes the
float32 initialisers of other operators.

Layers (execution order, from one traced float run on the evaluation inputs): a ``Gemm``
(``alpha = beta = 1``, ``transA = 0``; ``transB`` either way) or ``MatMul`` whose weight is an
initialiser is a ``linear`` layer; a ``Conv`` (2-D or 1-D, symmetric pads, any strides,
dilations, group) is a ``conv2d`` layer.  Names: the weight initialiser's name without its
``.weight`` suffix (``torch.onnx.export`` keeps module names: ``fc1.weight`` -> ``fc1``), else
the node name.  MatMuls of two activations stay float.

Data (``.npz``): ``calib`` (calibration inputs), ``eval_x``, optional ``eval_y`` and optional
``metric`` (top1 | mse | cosine; default top1 with integer ``eval_y``, mse with float
``eval_y``, cosine without).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import numpy as np

from ..gemm import im2col
from .base import LayerSpec, LayerwiseWorkload
from .generic import METRICS, output_fidelity, output_metric, weight_layer_name

ONNX_METRICS = ("top1", "mse", "cosine")


def _layer_name(init_name: str, node_name: str, fallback: str) -> str:
    name = weight_layer_name(init_name)
    return name if name != init_name else (node_name or fallback)


def _check_supported(model) -> None:
    """ValueError naming the first node whose operator onnx.reference cannot run."""
    from onnx.reference.ops import load_op

    opsets = {o.domain: o.version for o in model.opset_import}
    for i, node in enumerate(model.graph.node):
        if node.op_type in ("MatMul", "Gemm", "Conv") and node.domain in ("", "ai.onnx"):
            continue
        try:
            load_op(node.domain, node.op_type, opsets.get(node.domain))
        except (NotImplementedError, RuntimeError, ValueError, KeyError) as exc:
            raise ValueError(
                f"ONNX node {node.name or f'#{i}'!r} (op type {node.op_type!r}, domain "
                f"{node.domain or 'ai.onnx'!r}): not supported by the onnx.reference runtime "
                f"({exc})") from exc


class OnnxWorkload(LayerwiseWorkload):
    """An ONNX model + data as a lowbit workload (see the module docstring)."""

    def __init__(self, model, calib, eval_x, eval_y=None, metric: str | None = None,
                 name: str = "onnx-model"):
        super().__init__()
        import onnx

        self.onnx = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        inits = {t.name for t in self.onnx.graph.initializer}
        self.inputs = [i.name for i in self.onnx.graph.input if i.name not in inits]
        if len(self.inputs) != 1:
            raise ValueError(f"ONNX workload: expected one graph input, got {self.inputs}")
        _check_supported(self.onnx)
        self.calib = np.asarray(calib)
        self.eval_x = np.asarray(eval_x)
        self.eval_y = None if eval_y is None else np.asarray(eval_y)
        if metric is None:
            metric = ("cosine" if self.eval_y is None else
                      "top1" if np.issubdtype(self.eval_y.dtype, np.integer) else "mse")
        if metric not in ONNX_METRICS:
            raise ValueError(f"ONNX workload metric={metric!r}; allowed: {', '.join(ONNX_METRICS)}")
        if metric == "top1" and self.eval_y is None:
            raise ValueError("ONNX workload metric 'top1' needs eval_y in the data file")
        self.metric_name, self.higher_is_better = metric, METRICS[metric]
        self.name = name
        self.weights = {t.name: t for t in self.onnx.graph.initializer}
        h = hashlib.sha256(self.onnx.SerializeToString())
        h.update(self.eval_x.tobytes())
        self.version = "onnx-" + h.hexdigest()[:12]
        self._state = threading.local()
        self._evaluator = None

    @classmethod
    def from_files(cls, path, data) -> OnnxWorkload:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"--workload: ONNX file {str(path)!r} does not exist")
        if not Path(data).is_file():
            raise ValueError(f"--data: file {str(data)!r} does not exist")
        with np.load(data, allow_pickle=False) as z:
            missing = [k for k in ("calib", "eval_x") if k not in z.files]
            if missing:
                raise ValueError(f"--data {data}: missing key(s) {missing}; need calib, eval_x "
                                 f"(optional eval_y, metric); has {z.files}")
            metric = str(z["metric"]) if "metric" in z.files else None
            return cls(p, z["calib"], z["eval_x"], z["eval_y"] if "eval_y" in z.files else None,
                       metric, name=p.stem)

    # -- runtime -------------------------------------------------------------------------
    def _runtime(self):
        if self._evaluator is None:
            from onnx.reference import ReferenceEvaluator

            self._evaluator = ReferenceEvaluator(self.onnx, new_ops=_make_ops(self))
        return self._evaluator

    def _run(self, x, ctx, trace=None):
        st = self._state
        st.ctx, st.trace = ctx, trace
        try:
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.floating):
                x = x.astype(np.float64)
            return np.asarray(self._runtime().run(None, {self.inputs[0]: x})[0], np.float64)
        finally:
            st.ctx = st.trace = None

    def _build_layers(self):
        trace: dict = {}
        self._run(self.eval_x, None, trace)
        n = len(self.eval_x)
        return [LayerSpec(nm, r["kind"], r["weight"], r["bias"], macs=int(round(r["macs"] / n)),
                          in_shape=r["in_shape"], out_shape=r["out_shape"], attrs=r["attrs"])
                for nm, r in trace.items()]

    def _forward(self, x, ctx):
        return self._run(x, ctx)

    def eval_inputs(self):
        return self.eval_x

    def calibration_data(self):
        return self.calib

    def calibration_labels(self):
        return None

    def _metric(self, out, ref_out) -> dict:
        return output_metric(self.metric_name, out, ref_out, self.eval_y)

    def fidelity(self, out, ref_out) -> dict:
        return output_fidelity(self.metric_name, out, ref_out, self.eval_y)

    # -- GEMM nodes ----------------------------------------------------------------------
    def weight(self, name):
        from onnx import numpy_helper

        t = self.weights.get(name)
        return None if t is None else np.asarray(numpy_helper.to_array(t), np.float64)

    def linear(self, node, x, w2d, bias):
        """y = x @ w2d.T (+ bias) for x (..., K), w2d (M, K); the layer's GEMM."""
        st = self._state
        name = _layer_name(node.input[1], node.name, f"{node.op_type}")
        x2 = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
        if st.trace is not None:
            r = st.trace.setdefault(name, dict(kind="linear", weight=w2d, bias=bias, macs=0,
                                               in_shape=(w2d.shape[1],),
                                               out_shape=(w2d.shape[0],), attrs={}))
            r["macs"] += x2.shape[0] * w2d.size
            y = x2 @ w2d.T + (0.0 if bias is None else bias)
        else:
            y = self._gemm(name, x2, st.ctx)
        return y.reshape(*x.shape[:-1], w2d.shape[0])

    def conv(self, node, x, w, bias, stride, pads, dilation, group):
        st = self._state
        name = _layer_name(node.input[1], node.name, "Conv")
        one_d = w.ndim == 3
        if one_d:
            x, w = x[:, :, None, :], w[:, :, None, :]
            stride, pads, dilation = (1, stride[0]), (0, pads[0]), (1, dilation[0])
        x = np.asarray(x, np.float64)
        O, Cg, KH, KW = w.shape
        cg = x.shape[1] // group
        parts = [im2col(x[:, g * cg:(g + 1) * cg], KH, KW, stride, pads, dilation)
                 for g in range(group)]
        OH, OW = parts[0][1], parts[0][2]
        cols = [c[0] for c in parts]
        if st.trace is not None:
            r = st.trace.setdefault(name, dict(
                kind="conv2d", weight=w, bias=bias, macs=0, in_shape=tuple(x.shape[1:]),
                out_shape=(O, OH, OW), attrs=dict(stride=tuple(stride), padding=tuple(pads),
                                                  dilation=tuple(dilation), groups=group)))
            r["macs"] += cols[0].shape[0] * w.size
            w2d = w.transpose(0, 2, 3, 1).reshape(O, -1)
            og = O // group
            y = np.concatenate([c @ w2d[g * og:(g + 1) * og].T for g, c in enumerate(cols)], 1)
            y = y + (0.0 if bias is None else bias)
        elif group == 1:
            y = self._gemm(name, cols[0], st.ctx)
        else:
            y = self._gemm_grouped(name, cols, st.ctx)
        y = y.reshape(x.shape[0], OH, OW, O).transpose(0, 3, 1, 2)
        return y[:, :, 0, :] if one_d else y


def _make_ops(wl: OnnxWorkload):
    """OpRun classes for MatMul / Gemm / Conv bound to workload ``wl``."""
    from onnx.reference.op_run import OpRun

    class MatMul(OpRun):
        op_domain = ""

        def _run(self, a, b):
            w = wl.weight(self.onnx_node.input[1])
            if w is None or w.ndim != 2:  # activation x activation: float
                return (np.matmul(np.asarray(a, np.float64), np.asarray(b, np.float64)),)
            return (wl.linear(self.onnx_node, a, w.T, None),)

    class Gemm(OpRun):
        op_domain = ""

        def _run(self, a, b, c=None, alpha=None, beta=None, transA=None, transB=None):
            node = self.onnx_node
            w = wl.weight(node.input[1])
            alpha = 1.0 if alpha is None else alpha
            beta = 1.0 if beta is None else beta
            if w is None or transA or alpha != 1.0 or beta != 1.0:
                raise ValueError(f"ONNX node {node.name!r} (Gemm): only a constant B with "
                                 "alpha = beta = 1 and transA = 0 is supported")
            w2d = w if transB else w.T
            bias = None if c is None else np.asarray(c, np.float64)
            return (wl.linear(node, a, w2d, bias),)

    class Conv(OpRun):
        op_domain = ""

        def _run(self, x, w, b=None, auto_pad=None, dilations=None, group=None,
                 kernel_shape=None, pads=None, strides=None):
            node = self.onnx_node
            wc = wl.weight(node.input[1])
            if wc is None or wc.ndim not in (3, 4):
                raise ValueError(f"ONNX node {node.name!r} (Conv): only 1-D / 2-D convolutions "
                                 "with a constant weight are supported")
            if auto_pad not in (None, "NOTSET", b"NOTSET"):
                raise ValueError(f"ONNX node {node.name!r} (Conv): auto_pad={auto_pad!r}; "
                                 "only explicit pads are supported")
            nd = wc.ndim - 2
            pads = list(pads or [0] * (2 * nd))
            if pads[:nd] != pads[nd:]:
                raise ValueError(f"ONNX node {node.name!r} (Conv): asymmetric pads {pads}")
            bias = None if b is None else np.asarray(b, np.float64)
            return (wl.conv(node, x, wc, bias, tuple(strides or [1] * nd), tuple(pads[:nd]),
                            tuple(dilations or [1] * nd), int(group or 1)),)

    return [MatMul, Gemm, Conv]
