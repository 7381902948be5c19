"""Lookup-table fast path: float32 -> <= 8-bit formats for the deterministic rounding modes.

The code of a float32 (float64) ``x`` in a small target format depends only on its sign, its
exponent, the top ``K`` mantissa bits and whether any lower bit is set (sticky), for every
deterministic rounding mode:

* floats whose smallest rounding boundary (half the smallest subnormal) is a normal number of
  the source format: ``K = mbits + 1``. Proof: for a normal source value the rounding position
  of a normal result is source mantissa bit ``mbits + 1`` (counted from the top) and lies
  higher for a subnormal or underflowing result, so the kept part ``n`` and the class of the
  remainder (zero / below half / half / above half) are functions of the top ``mbits + 1``
  bits and the sticky bit; the source's subnormals are all below the smallest boundary and
  differ only in being nonzero. The same holds after an exact power-of-two block scaling that
  leaves the value a normal source number.
* other floats (E8M0 and formats reaching below 2^-126): ``K = 2*mbits + 2``, which also
  resolves the boundaries among float32 subnormals.
* integers: ``K = bits + 1`` (the rounding position of every non-saturating value), except
  under ``overflow="wrap"``: a wrapped code depends on every integer bit of the value (not
  monotone), so that policy has no table.

The table is built once per (format, policy) by running the exact generic kernel on the
smallest source value of each index; ``tests/formats/test_lut.py`` checks that the largest
source value of every index gives the same code, which, rounding being monotone, proves the
whole index range does.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit, prange

from lowbit.formats import _kernel as K
from lowbit.formats._arith import _umax32
from lowbit.formats._jit import dual_kernel

SOURCE_BITS = {32: (23, 8), 64: (52, 11)}
"""Source float width -> (mantissa bits SM, exponent bits SE)."""


NO_TABLE_OVERFLOW = ("wrap",)
"""Overflow policies under which the code is not a monotone function of the input."""


def lut_width(fmt, src_bits: int = 32, overflow: str = "saturate") -> int | None:
    """Mantissa bits the table keeps (see the module docstring), or None when the format or
    policy is not table-friendly (more than 8 bits, a table of more than 2**(12 + 1 + SE)
    entries, or an overflow policy in :data:`NO_TABLE_OVERFLOW`)."""
    if fmt.bits > 8 or overflow in NO_TABLE_OVERFLOW:
        return None
    if fmt.kind == "float":
        _, SE = SOURCE_BITS[src_bits]
        smallest_normal = 2.0 ** (2 - (1 << (SE - 1)))
        k = fmt.mbits + 1 if fmt.min_subnormal / 2 >= smallest_normal else 2 * fmt.mbits + 2
    else:
        k = fmt.bits + 1
    return k if k <= 12 else None


@lru_cache(maxsize=128)
def code_table(fmt, P_bytes: bytes, src_bits: int = 32) -> tuple[int, np.ndarray]:
    """(K, uint32 table indexed by ``(u >> (SM-K)) << 1 | sticky``) for parameter vector P.

    ``src_bits`` 32 (float32 input, 2^(K+10) entries) or 64 (float64 input, 2^(K+13) entries).
    """
    P = np.frombuffer(P_bytes, dtype=np.int64)
    k = lut_width(fmt, src_bits)
    SM, SE = SOURCE_BITS[src_bits]
    idx = np.arange(1 << (1 + SE + k + 1), dtype=np.uint64)
    u = ((idx >> np.uint64(1)) << np.uint64(SM - k)) | (idx & np.uint64(1))
    exact = np.empty(u.shape[0], dtype=np.int64)
    K.encode_kernel(u, SM, SE, np.zeros(1, np.int64), u.shape[0], P, np.uint64(0), 0, exact)
    codes = exact.astype(np.uint32)  # error sentinels wrap to >= K.TABLE_ERR_MIN
    codes.setflags(write=False)
    return k, codes


@lru_cache(maxsize=128)
def compact_table(fmt, P_bytes: bytes, src_bits: int = 32) -> tuple[int, np.ndarray]:
    """:func:`code_table` in the smallest unsigned dtype that holds every code and one more
    value (uint8 up to 7-bit formats, uint16 up to 15): an error entry becomes that dtype's
    maximum, ``>= 2**fmt.bits`` like no code. A 4x smaller table stays in the L1 cache."""
    k, t = code_table(fmt, P_bytes, src_bits)
    if fmt.bits > 15:
        return k, t
    dt = np.uint8 if fmt.bits <= 7 else np.uint16
    small = np.where(t >= K.TABLE_ERR_MIN, np.iinfo(dt).max, t).astype(dt)
    small.setflags(write=False)
    return k, small


@njit(cache=True, inline="always")
def table_index(v, sh, mask):
    """Index of the source bit pattern ``v``: sign, exponent and kept mantissa bits, sticky."""
    return (np.int64(v >> sh) << 1) | np.int64((v & mask) != 0)


@njit(cache=True, inline="always")
def fill_bad_row(i0, rowlen, codes_out, vals_out, want_codes, want_vals):
    """The outputs of a block that held NaN / Inf: codes 0 and values NaN for elements
    ``i0:i0 + rowlen`` (of the outputs that are wanted)."""
    for j in range(rowlen):
        if want_codes:
            codes_out[i0 + j] = 0
        if want_vals:
            vals_out[i0 + j] = np.nan


@dual_kernel
def lut_encode(u, sh, mask, table, ncodes, out):
    """``out[i] = table[index(u[i])]`` (``out`` of any unsigned dtype); returns the number of
    entries ``>= ncodes`` met (error entries of a :func:`compact_table` or :func:`code_table`;
    their ``out`` entries are not meaningful)."""
    nbad = 0
    for i in prange(u.shape[0]):
        c = table[table_index(u[i], sh, mask)]
        out[i] = c
        if c >= ncodes:
            nbad += 1
    return nbad


@dual_kernel
def lut_values(u, sh, mask, vtab, out):
    """``out[i] = vtab[index(u[i])]`` (``_codec.value_by_index``); returns the number of NaNs
    written (a NaN input or NaN code, or an error sentinel)."""
    nnan = 0
    for i in prange(u.shape[0]):
        v = vtab[table_index(u[i], sh, mask)]
        out[i] = v
        if v != v:
            nnan += 1
    return nnan


@dual_kernel
def lut_block_encode(u, nrows, rowlen, shift, bad, k, table, P, values, codes_out, vals_out):
    """Table-driven rounding of float32 rows each divided by ``2**shift[row]`` (exact); returns
    the number of error sentinels met (their ``codes_out`` entries are not meaningful).

    The power-of-two scale is applied by moving the exponent field when the scaled value stays
    a normal float32 (then the table index is in range by construction: sign, 8 exponent bits,
    ``k`` mantissa bits and the sticky bit). Every other input - an fp32 subnormal, Inf or NaN,
    or a scaled exponent at or below 0 or at or above 255 - goes through the generic exact
    kernel (``_kernel.encode_one`` with the same shift), so no index is ever formed outside the
    table. A row with ``bad[row]`` (it held NaN / Inf) gets codes 0 and values NaN.
    ``codes_out`` (any unsigned dtype) and ``vals_out`` (float32) may be empty; ``vals_out``
    receives ``element_value * 2**shift`` rounded once to float32.
    """
    sh = np.uint32(23 - k)
    mask = np.uint32((1 << (23 - k)) - 1)
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    nv = values.shape[0]
    nbad = 0
    for r in prange(nrows):
        i0 = r * rowlen
        if bad[r]:
            fill_bad_row(i0, rowlen, codes_out, vals_out, want_codes, want_vals)
            continue
        e = shift[r]
        scale = np.ldexp(np.float64(1.0), e)
        for j in range(rowlen):
            v = u[i0 + j]
            ex = np.int64((v >> np.uint32(23)) & np.uint32(0xFF))
            ne = ex - e
            if ex == 0 and (v & np.uint32(0x7FFFFF)) == 0:
                c = np.int64(table[(v >> sh) << np.uint32(1)])  # +-0
            elif ex == 0 or ex == 255 or ne <= 0 or ne >= 255:
                c = K.encode_one(np.uint64(v), 23, 8, e, P, np.uint64(0))
            else:
                vv = (v & np.uint32(0x807FFFFF)) | (np.uint32(ne) << np.uint32(23))
                c = np.int64(table[((vv >> sh) << np.uint32(1)) | np.uint32((v & mask) != 0)])
            ok = 0 <= c < nv
            if not ok:
                nbad += 1
            if want_codes:
                codes_out[i0 + j] = c if ok else 0
            if want_vals:
                vals_out[i0 + j] = values[c] * scale if ok else np.nan
    return nbad


@dual_kernel
def lut_scaled_encode(x, nrows, rowlen, div, s, ts, bad, k, table, values, y, yb, codes_out,
                      vals_out):
    """Table-driven rounding of the rows of ``x`` (float32 or float64) each divided by
    ``div[row]`` in float64 (``fl64(x / div)``, the block engine's definition for non-power-of-
    two scales) through the float64-source ``table``; ``y`` is a float64 scratch of ``x``'s
    length and ``yb`` the same memory viewed as uint64. Returns the number of error sentinels.
    A ``bad`` row gets codes 0 and values NaN; ``vals_out`` (may be empty) receives
    ``(values[code] * s[row]) * ts`` computed in float64 as ``QuantizedTensor.dequantize`` does,
    then stored in its dtype."""
    sh = np.uint64(52 - k)
    mask = (np.uint64(1) << sh) - np.uint64(1)
    want_codes = codes_out.shape[0] == x.shape[0]
    want_vals = vals_out.shape[0] == x.shape[0]
    nv = values.shape[0]
    nbad = 0
    for r in prange(nrows):
        i0 = r * rowlen
        if bad[r]:
            fill_bad_row(i0, rowlen, codes_out, vals_out, want_codes, want_vals)
            continue
        d = div[r]
        for j in range(rowlen):  # the divisions first: a vectorizable loop
            y[i0 + j] = np.float64(x[i0 + j]) / d
        sr = s[r]
        for j in range(rowlen):
            c = table[table_index(yb[i0 + j], sh, mask)]
            if c >= nv:
                nbad += 1
            if want_codes:
                codes_out[i0 + j] = c
            if want_vals:
                vals_out[i0 + j] = (values[c] * sr) * ts if c < nv else np.nan
    return nbad


@dual_kernel
def row_amax_f32(u, nrows, rowlen, amax_bits):
    """Per-row max of ``|x|`` as float32 bits (``>= 0x7F800000``: the row holds NaN / Inf), for
    float32 bit patterns ``u``. Branch-free inner loop on unsigned indices and 32-bit lanes
    (numba's ``max`` of uint32 and a signed index's wraparound keep it from vectorising)."""
    k = np.uint64(rowlen)
    for r in prange(nrows):
        i0 = np.uint64(r) * k
        m = np.uint32(0)
        for j in range(k):
            m = _umax32(u[i0 + j] & np.uint32(0x7FFFFFFF), m)
        amax_bits[r] = m


@dual_kernel
def gather(codes, lut, out):
    for i in prange(codes.shape[0]):
        out[i] = lut[codes[i]]
