"""The multiplier path of the GEMM engine: products given by a multiplier model of
:mod:`lowbit.formats.multiplier` on the operands' ELEMENT CODES, summed by the accumulator model.

Semantics (``T = model.table(element_format_a, element_format_w)``, the multiplier applied to
every pair of element codes):

    p[i, j, k] = T[ca[i, k], cw[j, k]] * sa[i, k] * sw[j, k]

``ca`` / ``cw`` are the element codes, ``sa`` / ``sw`` the scales that multiply them (block
scale; on the element path also the per-tensor scale; 1 for element formats): the multiplier
acts on element codes and scales multiply exactly, as in a block-scaled MAC array. Every
product is carried exactly (Dekker pairs). Accumulation:

* ``Exact``: the exact sum, correctly rounded once to float64.
* ``FloatAccum`` (sequential, ``chunk=c``): ``acc = RNE(acc + exact sum of the next c
  products)``, ``c = 1`` when sequential. On the block path (``use_block``) ``c`` is the common
  block length: the block dot product (exact inner sum per block, one rounding per block); the
  per-tensor scales multiply the result once at the end, as in the engine's block path.
* ``IntAccum``: the integer products ``T / 2**(lsb_a + lsb_w)`` (lsb: the element grids' least
  significant bit) are summed in the wrap / saturate register, restarting per block on the
  block path (one block of length K on the element path), then scaled exactly.
* pairwise ``FloatAccum``: not supported here (ValueError).

With :class:`~lowbit.formats.multiplier.ExactMul` this path computes what the engine's element
and block paths compute, bit for bit (the test suite checks it); it is the path for every other
model. Operands must be quantised (their codes are what the multiplier sees).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lowbit.formats import encode
from lowbit.formats.accum import Exact, FloatAccum, IntAccum

from .accum_kernels import int_register, int_step
from .accum_round import (
    FLOAT64_PARAMS,
    MSUM_CAP,
    float_params,
    msum_add,
    msum_finalize,
    round_fmt,
    two_prod,
)
from .operands import Operand, align_blocks, common_blocks, element_grid

MODE_EXACT, MODE_ROUND, MODE_INT = 0, 1, 2


def element_codes(op: Operand, Kp: int, bs: int):
    """``(codes int64 (R, Kp), scales float64 (R, Kp // bs), element format)`` of a quantised
    operand: the codes of its element values (exact: they are on the element grid)."""
    if op.fmt is None:
        raise ValueError("a non-exact multiplier needs quantised operands (their element codes "
                         "are its inputs); set QuantConfig weight= and act=")
    el = op.fmt.element if op.fmt.kind == "block" else op.fmt
    P, S = align_blocks(op, bs, Kp)
    codes = np.asarray(encode(P, el, rounding="rne", overflow="saturate",
                              nan_input="zero")).astype(np.int64)
    return np.ascontiguousarray(codes), S, el


@njit(cache=True, inline="always")
def _add_scaled(buf, n, t, sa, sw):
    """Add ``t * sa * sw`` exactly into the expansion ``buf[:n]``."""
    if sa == 1.0 and sw == 1.0:
        return msum_add(buf, n, t)
    h1, l1 = two_prod(t, sa)
    h2, l2 = two_prod(h1, sw)
    n = msum_add(buf, n, h2)
    if l2 != 0.0:
        n = msum_add(buf, n, l2)
    if l1 != 0.0:
        h3, l3 = two_prod(l1, sw)
        n = msum_add(buf, n, h3)
        if l3 != 0.0:
            n = msum_add(buf, n, l3)
    return n


@njit(parallel=True, cache=True)
def _table_gemm(Ca, Sa, Cw, Sw, T, K, sbs, chunk, mode, fp, bits, sat, unit, Ti):
    """out[i, j] per the module docstring. ``sbs``: scale block length of Sa / Sw; ``chunk``:
    accumulation chunk (MODE_ROUND) or integer-register block (MODE_INT); columns >= K are
    padding and skipped. ``Ti``: the integer table ``T / unit`` (MODE_INT)."""
    N, Kp = Ca.shape
    M = Cw.shape[0]
    out = np.empty((N, M))
    lo_, hi_, span = int_register(bits)
    for i in prange(N):
        parts = np.empty(MSUM_CAP)
        for j in range(M):
            n = 0
            acc = 0.0
            special = 0.0
            for k0 in range(0, K, chunk):
                if mode == MODE_INT:
                    reg = np.int64(0)
                    for k in range(k0, min(k0 + chunk, K)):
                        reg = int_step(reg, Ti[Ca[i, k], Cw[j, k]], lo_, hi_, span, sat)
                    b = k0 // sbs
                    n = _add_scaled(parts, n, float(reg), Sa[i, b] * unit, Sw[j, b])
                    continue
                m = n if mode == MODE_EXACT else 0
                if mode == MODE_ROUND and acc != 0.0:
                    parts[0] = acc
                    m = 1
                for k in range(k0, min(k0 + chunk, K)):
                    t = T[Ca[i, k], Cw[j, k]]
                    if not (abs(t) < np.inf):
                        special += t
                        continue
                    m = _add_scaled(parts, m, t, Sa[i, k // sbs], Sw[j, k // sbs])
                if mode == MODE_EXACT:
                    n = m
                elif abs(acc) < np.inf and special == 0.0:
                    h, rs = msum_finalize(parts, m)
                    acc = round_fmt(h, rs, fp)
            if special != 0.0 or special != special:
                out[i, j] = special if mode != MODE_ROUND else acc + special
            elif mode == MODE_ROUND:
                out[i, j] = acc
            else:
                out[i, j] = msum_finalize(parts, n)[0]
    return out


def _grid_unit(el) -> float:
    return 2.0 ** element_grid(el)[1]


def mul_gemm(A: Operand, W: Operand, acc, use_block: bool, model) -> np.ndarray:
    """``A @ W.T`` (N, M) with the products of multiplier ``model`` (see module docstring)."""
    K = A.values.shape[1]
    if use_block:
        bs, Kp = common_blocks(A, W)
        tensor = A.tensor_scale * W.tensor_scale
    else:
        bs, Kp = 1, K
        tensor = 1.0
    Ca, Sa, fa = element_codes(A, Kp, bs)
    Cw, Sw, fw = element_codes(W, Kp, bs)
    if not use_block:  # element path: the per-tensor scale multiplies every product
        Sa, Sw = Sa * A.tensor_scale, Sw * W.tensor_scale
    T = np.ascontiguousarray(model.table(fa, fw))
    fp = float_params(acc.fmt, acc.overflow) if isinstance(acc, FloatAccum) else FLOAT64_PARAMS
    Ti = np.zeros((1, 1), np.int64)
    bits, sat, unit = 64, False, 1.0
    if isinstance(acc, Exact):
        mode, chunk = MODE_EXACT, max(K, 1)
    elif isinstance(acc, FloatAccum):
        if acc.order == "pairwise":
            raise ValueError(f"accum={acc.name}: pairwise accumulation is not supported with the "
                             f"multiplier {model.name}; use sequential or _chunk<k>")
        mode = MODE_ROUND
        chunk = bs if use_block else (acc.chunk or 1)
    elif isinstance(acc, IntAccum):
        mode, bits, sat = MODE_INT, int(acc.bits), acc.overflow == "saturate"
        chunk = bs if use_block else max(K, 1)
        if not use_block and not (np.all(Sa == Sa[:, :1]) and np.all(Sw == Sw[:, :1])):
            raise ValueError(f"accum={acc.name}: an integer register on the element path needs "
                             "scales constant along K (element formats or per-channel scales)")
        unit = _grid_unit(fa) * _grid_unit(fw)
        used = T[np.ix_(np.unique(Ca[:, :K]), np.unique(Cw[:, :K]))]
        fin = np.isfinite(T)
        Q = np.where(fin, T, 0.0) / unit
        if (not np.isfinite(used).all() or not np.array_equal(Q, np.rint(Q))
                or np.abs(Q).max() >= 2.0**62):
            raise ValueError(f"accum={acc.name}: the products of {model.name} on {fa.name} x "
                             f"{fw.name} are not integers on the grid 2**{np.log2(unit):.0f}")
        Ti = np.ascontiguousarray(Q.astype(np.int64))
    else:
        raise TypeError(f"unknown accumulator model {acc!r}")
    out = _table_gemm(Ca, np.ascontiguousarray(Sa), Cw, np.ascontiguousarray(Sw), T, K=K,
                      sbs=bs if use_block else 1, chunk=int(chunk), mode=mode, fp=fp, bits=bits,
                      sat=sat, unit=unit, Ti=Ti)
    return out * tensor if tensor != 1.0 else out

