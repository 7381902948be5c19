"""Quantised GEMM / linear / conv2d on numpy arrays with an accumulator model.

Pipeline: quantise the operands per :class:`~lowbit.sim.qconfig.QuantConfig` (blocks along the
reduction axis K by default), then run the GEMM engine ``out[n, m] = acc_k A[n, k] * W[m, k]``.

Engine paths
------------
*Element path* (dequantised values): every product ``a*b`` of quantised values is exact in
float64 when the two operands' significands need <= 53 bits together (any pair of formats up to
fp32 x fp32, MX with power-of-two scales); otherwise each product is carried exactly as a
Dekker pair ``hi + lo``.  Accumulation per the model:

* ``Exact``: Shewchuk expansion sum of the exact products (CPython ``math.fsum`` algorithm),
  rounded ONCE to float64 - the exact dot product, correctly rounded.
* ``FloatAccum``: sequential / pairwise / chunked, one RNE rounding of the exact sum per add
  (TwoSum + residual-sign tie-break, :mod:`lowbit.sim.accum_round`).
* ``IntAccum``: the values must be integers on the operands' fixed-point grids (int formats:
  ``code``; float formats: multiples of their smallest subnormal); products are summed in the
  wrap/saturate register, the result is scaled back by the two grid units.

*Block path* (:mod:`lowbit.sim.mxdot`, OCP MX v1.0 section 6): used when ``dot="block"``, or
``dot="auto"`` and both operands are block formats (or one is and the accumulator is an
``IntAccum``) and the accumulator is ``Exact``, ``IntAccum`` or a sequential un-chunked
``FloatAccum``.  Per K-block: exact inner sum of element products (integer register for
``IntAccum``), scaled by the two block scales, accumulated across blocks with the model (one
rounding per block for ``FloatAccum``); per-tensor scales (NVFP4) multiply the result once at the
end in float64 (the epilogue ``alpha``).  Operands with different block lengths are aligned on
``gcd`` of the lengths; element formats / ``None`` count as one block of length K.

The ``bias`` of ``qlinear`` / ``qconv2d`` is added in float64 after accumulation (epilogue).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from lowbit.formats.accum import Exact, FloatAccum, IntAccum

from . import accum_kernels as K_
from .checks import check_bias, int_arg, int_pair, real_array
from .qconfig import Operand, QuantConfig, as_config, prepare, prepare_prequantized, prepare_values
from .quantizers._formats import float_params

# ------------------------------------------------------------------------------ engine


def _int_grid(op: Operand, values: np.ndarray, what: str):
    """Integer array and unit 2**lsb of an operand on its fixed-point grid."""
    lsb = 0 if op.lsb is None else op.lsb
    ints = np.ldexp(values, -lsb)
    if not np.all(np.isfinite(ints)) or not np.array_equal(ints, np.rint(ints)):
        raise ValueError(f"IntAccum: {what} values are not integers on the grid 2**{lsb}; "
                         "use an int format, dot='block' for block formats, or a float accumulator")
    if np.any(np.abs(ints) >= 2.0 ** 31):
        raise ValueError(f"IntAccum: {what} grid integers exceed 2**31")
    return ints.astype(np.int64), 2.0 ** lsb


def _element_gemm(A: Operand, W: Operand, acc) -> np.ndarray:
    a, w = A.values, W.values
    if isinstance(acc, IntAccum):
        ia, ua = _int_grid(A, a, "activation")
        iw, uw = _int_grid(W, w, "weight")
        sat = acc.overflow == "saturate"
        one_a, one_w = np.ones((ia.shape[0], 1)), np.ones((iw.shape[0], 1))
        return K_.block_gemm_int(ia, one_a, iw, one_w, max(ia.shape[1], 1), int(acc.bits), sat,
                                 ua * uw)
    twoprod = int(A.sig_bits + W.sig_bits > 53)
    if isinstance(acc, Exact):
        return K_.gemm_chunk(a, w, max(a.shape[1], 1), twoprod, 0, 0, 0, 0.0, 0.0, 0.0, 0)
    fp = float_params(acc.fmt, acc.overflow)
    if acc.chunk is not None:
        return K_.gemm_chunk(a, w, acc.chunk, twoprod, 1, *fp)
    if acc.order == "pairwise":
        if twoprod:
            warnings.warn("pairwise accumulation with > 53 product significand bits: products "
                          "are rounded to float64 before the adder tree", stacklevel=3)
        return K_.gemm_pairwise(a, w, *fp)
    if twoprod:
        return K_.gemm_chunk(a, w, 1, 1, 1, *fp)
    return K_.gemm_seq(a, w, *fp)


def _align(op: Operand, bs: int, Kp: int):
    """Element values padded to Kp and scales expanded to blocks of length ``bs``."""
    R = op.P.shape[0]
    P = np.zeros((R, Kp))
    n = min(op.P.shape[1], Kp)
    P[:, :n] = op.P[:, :n]
    idx = np.minimum(np.arange(Kp // bs) * bs // op.bs, op.S.shape[1] - 1)
    return P, np.ascontiguousarray(op.S[:, idx])


def _plain_inner_ok(A: Operand, W: Operand, bs: int) -> bool:
    """True if every partial inner sum of a block is a fixed-point number of <= 53 bits."""
    if A.lsb is None or W.lsb is None:
        return False
    top = math.floor(math.log2(A.pmax * W.pmax)) + 1 + math.ceil(math.log2(max(bs, 1)))
    return top - (A.lsb + W.lsb) <= 53


def block_path_ok(A: Operand, W: Operand, acc) -> bool:
    if isinstance(acc, FloatAccum):
        return acc.order == "sequential" and acc.chunk is None
    return True


def _block_gemm(A: Operand, W: Operand, acc) -> np.ndarray:
    bs = math.gcd(A.bs, W.bs)
    Kp = max(A.P.shape[1], W.P.shape[1])
    Kp = -(-Kp // bs) * bs
    Pa, Sa = _align(A, bs, Kp)
    Pw, Sw = _align(W, bs, Kp)
    if isinstance(acc, IntAccum):
        ia, ua = _int_grid(A, Pa, "activation element")
        iw, uw = _int_grid(W, Pw, "weight element")
        out = K_.block_gemm_int(ia, Sa, iw, Sw, bs, int(acc.bits), acc.overflow == "saturate",
                                ua * uw)
    else:
        plain = int(_plain_inner_ok(A, W, bs))
        if isinstance(acc, Exact):
            out = K_.block_gemm(Pa, Sa, Pw, Sw, bs, 0, plain, 0, 0, 0.0, 0.0, 0.0, 0)
        else:
            out = K_.block_gemm(Pa, Sa, Pw, Sw, bs, 1, plain, *float_params(acc.fmt, acc.overflow))
    t = A.T * W.T
    return out * t if t != 1.0 else out


def gemm_nt(A: Operand, W: Operand, acc, dot: str = "auto") -> np.ndarray:
    """``A @ W.T`` for prepared (N, K) / (M, K) operands with accumulator model ``acc``."""
    if A.values.shape[1] != W.values.shape[1]:
        raise ValueError(f"K mismatch: {A.values.shape[1]} vs {W.values.shape[1]}")
    use_block = False
    if dot == "block":
        if not block_path_ok(A, W, acc):
            raise ValueError("dot='block' needs accum exact, int*, or a sequential un-chunked "
                             f"float accumulator (got {acc.name})")
        use_block = True
    elif dot == "auto" and block_path_ok(A, W, acc):
        use_block = (A.is_block and W.is_block) or (
            isinstance(acc, IntAccum) and (A.is_block or W.is_block))
    if A.values.shape[1] == 0:
        return np.zeros((A.values.shape[0], W.values.shape[0]))
    return _block_gemm(A, W, acc) if use_block else _element_gemm(A, W, acc)


# ------------------------------------------------------------------------------ layers


def _prep(x2d, fmt, along_k: bool) -> Operand:
    """Operand for an (R, K) array; ``along_k=False``: blocks run along R (a non-K axis of the
    caller's tensor), so the operand is quantise-dequantised and multiplied on the element path."""
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


def qmatmul(a, b, cfg_or_accum="exact") -> np.ndarray:
    """``a @ b`` with quantisation and accumulation per ``cfg_or_accum``.

    a: (..., K) activations (``cfg.act``), b: (K, M) weights (``cfg.weight``, blocks along K =
    axis 0 unless ``weight_axis=1``).  ``cfg_or_accum``: QuantConfig, AccumModel or string.
    Returns float64 (..., M).
    """
    cfg = as_config(cfg_or_accum, "qmatmul: cfg_or_accum")
    a = real_array(a, "qmatmul", "a", min_ndim=1)
    b = real_array(b, "qmatmul", "b")
    if b.ndim != 2 or a.shape[-1] != b.shape[0]:
        raise ValueError(f"qmatmul: shapes {a.shape} and {b.shape} do not match (..., K) @ (K, M)")
    lead = a.shape[:-1]
    aa = _check_axis(cfg.act_axis, a.ndim, "act_axis", "qmatmul")
    wa = _check_axis(cfg.weight_axis, 2, "weight_axis", "qmatmul")
    if a.size == 0 or b.shape[1] == 0:  # empty batch / K = 0 / no outputs: empty sums
        return _empty_sum(lead, b.shape[1], None)
    a2 = a.reshape(-1, a.shape[-1])
    A = _prep(a2, cfg.act, aa in (None, a.ndim - 1))
    W = _prep(b.T, cfg.weight, wa in (None, 0))
    return gemm_nt(A, W, cfg.accum, cfg.dot).reshape(*lead, b.shape[1])


def qlinear(x, w, bias=None, cfg="exact") -> np.ndarray:
    """PyTorch-layout linear layer: ``x @ w.T + bias``.

    x: (..., in) float, w: (out, in), bias: (out,) or None; quantised per ``cfg`` (weights and
    activations blocked along ``in``).  Returns float64 (..., out); bias added in float64.
    """
    cfg = as_config(cfg, "qlinear: cfg")
    x = real_array(x, "qlinear", "x", min_ndim=1)
    w = real_array(w, "qlinear", "w")
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise ValueError(f"qlinear: x {x.shape} and w {w.shape} do not match (..., in) / (out, in)")
    bias = check_bias(bias, w.shape[0], "qlinear")
    lead = x.shape[:-1]
    aa = _check_axis(cfg.act_axis, x.ndim, "act_axis", "qlinear")
    wa = _check_axis(cfg.weight_axis, 2, "weight_axis", "qlinear")
    if x.size == 0 or w.shape[0] == 0:  # empty batch / K = 0 / no outputs: empty sums
        return _empty_sum(lead, w.shape[0], bias)
    A = _prep(x.reshape(-1, x.shape[-1]), cfg.act, aa in (None, x.ndim - 1))
    W = _prep(w, cfg.weight, wa in (None, 1))
    y = gemm_nt(A, W, cfg.accum, cfg.dot)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, w.shape[0])


def qlinear_prequant(x, wq, bias=None, cfg="exact") -> np.ndarray:
    """Like :func:`qlinear`, but ``wq`` (out, in) is ALREADY quantised to ``cfg.weight`` (by
    :func:`~lowbit.sim.quantizers.gptq_quantize` or ``rtn_quantize``) and used as is; ``x`` is
    quantised to ``cfg.act`` along ``in``.  Always the element path (products exact when the two
    formats need <= 53 significand bits, else Dekker pairs)."""
    cfg = as_config(cfg, "qlinear_prequant: cfg")
    x = real_array(x, "qlinear_prequant", "x", min_ndim=1)
    wq = real_array(wq, "qlinear_prequant", "wq")
    if wq.ndim != 2 or x.shape[-1] != wq.shape[1]:
        raise ValueError(f"qlinear_prequant: x {x.shape} and wq {wq.shape} do not match "
                         "(..., in) / (out, in)")
    bias = check_bias(bias, wq.shape[0], "qlinear_prequant")
    lead = x.shape[:-1]
    if x.size == 0 or wq.shape[0] == 0:
        return _empty_sum(lead, wq.shape[0], bias)
    A = prepare(x.reshape(-1, x.shape[-1]), cfg.act)
    A = Operand(A.fmt, A.values, A.values, np.ones((A.values.shape[0], 1)), 1.0,
                max(A.values.shape[1], 1), False, A.sig_bits,
                A.lsb if not A.is_block else None, A.pmax if not A.is_block else None)
    y = gemm_nt(A, prepare_prequantized(wq, cfg.weight), cfg.accum, "element")
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


def qconv2d(x, w, bias=None, cfg="exact", stride=1, padding=0, dilation=1,
            groups=1) -> np.ndarray:
    """2-D convolution (cross-correlation, ``torch.nn.functional.conv2d`` semantics) via im2col
    + the GEMM engine.

    x: (N, C, H, W), w: (O, C/groups, KH, KW), bias (O,) or None; stride / padding (zeros) /
    dilation int or (h, w); ``groups`` divides C and O, group g maps input channels
    [g*C/groups, (g+1)*C/groups) to output channels [g*O/groups, (g+1)*O/groups).  Per group
    the GEMM is ``cols_g (N*OH*OW, K) @ W_g.T`` with K = KH*KW*C/groups ordered (kh, kw, c);
    weights and activation patches are quantised along K (``weight_axis`` / ``act_axis`` may
    only be None or 1 = channels).  The weight tensor is quantised once as an (O, K) operand,
    so a per-tensor scale (NVFP4) is shared by all groups.  Returns float64 (N, O, OH, OW).
    """
    cfg = as_config(cfg, "qconv2d: cfg")
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
    W = prepare(w.transpose(0, 2, 3, 1).reshape(O, KH * KW * Cg), cfg.weight)
    ys = []
    for g in range(groups):
        if g:
            cols, OH, OW = im2col(x[:, g * Cg:(g + 1) * Cg], KH, KW, stride, padding, dilation)
        ys.append(gemm_nt(prepare(cols, cfg.act), W.rows(g * Og, (g + 1) * Og), cfg.accum,
                          cfg.dot))
    y = ys[0] if groups == 1 else np.concatenate(ys, axis=1)
    if bias is not None:
        y = y + bias
    return np.ascontiguousarray(y.reshape(N, OH, OW, O).transpose(0, 3, 1, 2))


__all__ = ["qmatmul", "qlinear", "qlinear_prequant", "qconv2d", "gemm_nt", "im2col", "QuantConfig"]
