"""Quantised GEMM / linear / conv2d layers on numpy arrays with an accumulator model.

Pipeline: quantise the operands per the layer's ``config`` (:class:`~lowbit.sim.qconfig.QuantConfig`,
blocks along the reduction axis K by default; :mod:`lowbit.sim.operands`), then run the GEMM
engine ``out[n, m] = acc_k A[n, k] * W[m, k]`` (:mod:`lowbit.sim.engine`: its numerics, and the
fast paths that reproduce them bit for bit).

Every layer function takes ONE ``config`` argument (positional or keyword): a
:class:`~lowbit.sim.qconfig.QuantConfig`, or only an accumulator model / string such as
``"fp32"`` (operands then stay unquantised); see :func:`~lowbit.sim.qconfig.as_config`.
The ``bias`` of ``qlinear`` / ``qconv2d`` is added in float64 after accumulation (epilogue).
"""

from __future__ import annotations

import numpy as np

from .checks import check_bias, check_block_axis, int_arg, int_pair, real_array
from .engine import gemm_nt
from .operands import Operand, prepare, prepare_prequantized, prepare_values
from .qconfig import QuantConfig, as_config

# ------------------------------------------------------------------------------ layers


def _prep(x2d, fmt, along_k: bool, where: str, name: str, axis_name: str, axis) -> Operand:
    """Operand for an (R, K) array; ``along_k=False``: blocks run along R (a non-K axis of the
    caller's tensor), so the operand is quantise-dequantised and multiplied on the element path.
    ``where`` / ``name`` / ``axis_name`` / ``axis``: the caller's function, operand and axis
    argument, named in the error when the blocks would run along a length-1 dimension."""
    axis_text = f"{axis_name}={axis}" + (" (the reduction axis K)" if axis is None else "")
    check_block_axis(fmt, x2d.shape, 1 if along_k else 0, where, name, axis_text)
    if along_k:
        return prepare(x2d, fmt)
    return prepare(prepare_values(x2d, fmt, axis=0), None)


def _check_axis(axis, ndim, what, where):
    if axis is None:
        return None
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: {what}={axis} out of range for a {ndim}-D tensor; allowed: None or "
                         f"{-ndim}..{ndim - 1}")
    return axis % ndim


def _empty_sum(lead: tuple, n_out: int, bias) -> np.ndarray:
    """Result of a layer with nothing to multiply (no rows, K = 0 or no outputs): every dot
    product is the empty sum +0.0, plus the bias; no operand is quantised."""
    y = np.zeros((*lead, n_out))
    return y + bias if bias is not None else y


def qmatmul(a, b, config="exact") -> np.ndarray:
    """``a @ b`` with quantisation and accumulation per ``config``.

    a: (..., K) activations (``config.act``), b: (K, M) weights (``config.weight``, blocks along
    K = axis 0 unless ``weight_axis=1``).  ``config``: QuantConfig, accumulator model or string.
    Returns float64 (..., M).
    """
    cfg = as_config(config, "qmatmul: config")
    a = real_array(a, "qmatmul", "a", min_ndim=1)
    b = real_array(b, "qmatmul", "b")
    if b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"qmatmul: shapes {a.shape} and {b.shape} do not match (..., K) @ (K, M)")
    lead = a.shape[:-1]
    aa = _check_axis(cfg.act_axis, ndim=a.ndim, what="act_axis", where="qmatmul")
    wa = _check_axis(cfg.weight_axis, ndim=2, what="weight_axis", where="qmatmul")
    if a.size == 0 or b.shape[1] == 0:  # empty batch / K = 0 / no outputs: empty sums
        return _empty_sum(lead, b.shape[1], None)
    a2 = a.reshape(-1, a.shape[-1])
    A = _prep(a2, cfg.act, aa in (None, a.ndim - 1), "qmatmul", "a", "act_axis", cfg.act_axis)
    W = _prep(b.T, cfg.weight, wa in (None, 0), "qmatmul", "b", "weight_axis", cfg.weight_axis)
    return gemm_nt(A, W, cfg.accum, cfg.dot, cfg.multiplier).reshape(*lead, b.shape[1])


def qlinear(x, w, bias=None, config="exact") -> np.ndarray:
    """PyTorch-layout linear layer: ``x @ w.T + bias``.

    x: (..., in) float, w: (out, in), bias: (out,) or None; quantised per ``config`` (weights
    and activations blocked along ``in``).  Returns float64 (..., out); bias added in float64.
    """
    cfg = as_config(config, "qlinear: config")
    x = real_array(x, "qlinear", "x", min_ndim=1)
    w = real_array(w, "qlinear", "w")
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"qlinear: x {x.shape} and w {w.shape} do not match (..., in) / (out, in)")
    bias = check_bias(bias, w.shape[0], "qlinear")
    lead = x.shape[:-1]
    aa = _check_axis(cfg.act_axis, ndim=x.ndim, what="act_axis", where="qlinear")
    wa = _check_axis(cfg.weight_axis, ndim=2, what="weight_axis", where="qlinear")
    if x.size == 0 or w.shape[0] == 0:  # empty batch / K = 0 / no outputs: empty sums
        return _empty_sum(lead, w.shape[0], bias)
    A = _prep(x.reshape(-1, x.shape[-1]), cfg.act, aa in (None, x.ndim - 1), "qlinear", "x",
              "act_axis", cfg.act_axis)
    W = _prep(w, cfg.weight, wa in (None, 1), "qlinear", "w", "weight_axis", cfg.weight_axis)
    y = gemm_nt(A, W, cfg.accum, cfg.dot, cfg.multiplier)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, w.shape[0])


def qlinear_prequant(x, wq, bias=None, config="exact") -> np.ndarray:
    """Like :func:`qlinear`, but ``wq`` (out, in) is ALREADY quantised to ``config.weight`` (by
    :func:`~lowbit.sim.quantizers.gptq_quantize` or ``rtn_quantize``) and used as is; ``x`` is
    quantised to ``config.act`` along ``in``.  Always the element path (products exact when the
    two formats need <= 53 significand bits, else Dekker pairs); for the block dot product of
    GPTQ weights build the operand with :func:`~lowbit.sim.operands.prepare_prequantized` and
    its ``scales``."""
    cfg = as_config(config, "qlinear_prequant: config")
    x = real_array(x, "qlinear_prequant", "x", min_ndim=1)
    wq = real_array(wq, "qlinear_prequant", "wq")
    if wq.ndim != 2 or x.shape[-1] != wq.shape[1]:
        raise ValueError(f"qlinear_prequant: x {x.shape} and wq {wq.shape} do not match "
                         "(..., in) / (out, in)")
    bias = check_bias(bias, wq.shape[0], "qlinear_prequant")
    lead = x.shape[:-1]
    if x.size == 0 or wq.shape[0] == 0:
        return _empty_sum(lead, wq.shape[0], bias)
    x2d = x.reshape(-1, x.shape[-1])
    check_block_axis(cfg.act, x2d.shape, 1, "qlinear_prequant", "x", "the reduction axis K")
    A = prepare(x2d, cfg.act).element_view()
    y = gemm_nt(A, prepare_prequantized(wq, cfg.weight), cfg.accum, "element",
                cfg.multiplier)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, wq.shape[0])


def im2col(x, kh, kw, stride=1, padding=0, dilation=1):
    """NCHW ``x`` -> (N*OH*OW, KH*KW*C) patches, K ordered (kh, kw, c) (channels fastest, as in
    NHWC implicit GEMM, so K-blocks run along input channels).  ``stride`` / ``padding`` (zeros)
    / ``dilation``: int or (h, w), as in ``torch.nn.Conv2d``.  Returns (cols, OH, OW)."""
    sh, sw = int_pair(stride, "qconv2d", "stride", 1)
    ph, pw = int_pair(padding, "qconv2d", "padding", 0)
    dh, dw = int_pair(dilation, "qconv2d", "dilation", 1)
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if OH <= 0 or OW <= 0:
        raise ValueError(f"qconv2d: kernel {kh}x{kw} (dilation {dh}x{dw}) larger than the padded "
                         f"input {H + 2 * ph}x{W + 2 * pw}")
    xh = np.ascontiguousarray(xp.transpose(0, 2, 3, 1))  # NHWC
    s = xh.strides
    win = np.lib.stride_tricks.as_strided(
        xh, (N, OH, OW, kh, kw, C),
        (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)
    return win.reshape(N * OH * OW, kh * kw * C), OH, OW


def qconv2d(x, w, bias=None, config="exact", stride=1, padding=0, dilation=1,
            groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation, ``torch.nn.functional.conv2d`` semantics) via im2col
    + the GEMM engine.

    x: (N, C, H, W), w: (O, C/groups, KH, KW), bias (O,) or None; stride / padding (zeros) /
    dilation int or (h, w); ``groups`` divides C and O, group g maps input channels
    [g*C/groups, (g+1)*C/groups) to output channels [g*O/groups, (g+1)*O/groups).  Per group
    the GEMM is ``cols_g (N*OH*OW, K) @ W_g.T`` with K = KH*KW*C/groups ordered (kh, kw, c);
    weights and activation patches are quantised along K (``weight_axis`` / ``act_axis`` may
    only be None or 1 = channels).  The weight tensor is quantised once as an (O, K) operand,
    so a per-tensor scale (NVFP4) is shared by all groups.  ``config`` as for :func:`qlinear`.
    Returns float64 (N, O, OH, OW).
    """
    cfg = as_config(config, "qconv2d: config")
    for ax, nm in ((cfg.weight_axis, "weight_axis"), (cfg.act_axis, "act_axis")):
        if ax not in (None, 1):
            raise ValueError(f"qconv2d: {nm}={ax}; allowed: None or 1 (input channels / K)")
    x = real_array(x, "qconv2d", "x")
    w = real_array(w, "qconv2d", "w")
    groups = int_arg(groups, "qconv2d", "groups", 1)
    if (x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1] * groups
            or w.shape[0] % groups):
        raise ValueError(f"qconv2d: x {x.shape} (N,C,H,W) and w {w.shape} (O,C/groups,KH,KW) "
                         f"mismatch for groups={groups}")
    N = x.shape[0]
    O, Cg, KH, KW = w.shape
    Og = O // groups
    bias = check_bias(bias, O, "qconv2d")
    cols, OH, OW = im2col(x[:, :Cg], KH, KW, stride, padding, dilation)  # checks the geometry
    if cols.size == 0 or O == 0:  # empty batch / C = 0 / no outputs: empty sums
        y = _empty_sum((N * OH * OW,), O, bias)
        return np.ascontiguousarray(y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2))
    K = KH * KW * Cg
    for fmt, nm, shape in ((cfg.act, "x", cols.shape), (cfg.weight, "w", (O, K))):
        check_block_axis(fmt, shape, 1, "qconv2d", f"{nm} (K = KH*KW*C/groups = {K})",
                         "the reduction axis K")
    W = prepare(w.transpose(0, 2, 3, 1).reshape(O, K), cfg.weight)
    ys = []
    for g in range(groups):
        if g:
            cols, OH, OW = im2col(x[:, g * Cg:(g + 1) * Cg], KH, KW, stride, padding, dilation)
        ys.append(gemm_nt(prepare(cols, cfg.act), W.rows(g * Og, (g + 1) * Og), cfg.accum,
                          cfg.dot, cfg.multiplier))
    y = ys[0] if groups == 1 else np.concatenate(ys, axis=1)
    if bias is not None:
        y = y + bias
    return np.ascontiguousarray(y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2))


__all__ = ["qmatmul", "qlinear", "qlinear_prequant", "qconv2d", "gemm_nt", "im2col", "QuantConfig",
           "Operand"]
