"""Fused pass for block formats with ``"amax"`` scales over a 4-bit float element (NVFP4): block
statistics, scale code and element codes / values by integer comparisons, no division.

The block engine defines, for a block with finite amax ``A`` (float32), tensor scale ``ts`` (1
when absent) and element format ``E``:

* the scale ``s = R_S(g(A))``, ``g(A) = fl64(fl64(A / E.max) / ts)``
  (:func:`lowbit.formats.block_scales.amax_quotient`), ``R_S`` the rounding into the scale format
  (:func:`lowbit.formats.block_scales.store_scale`: RNE, saturating, a nonzero block raised to
  the smallest positive scale), and its code ``scale_codes(s)``;
* each element's code ``R_E(fl64(x / div))``, ``div = s * ts`` (1 for a zero block), ``R_E`` the
  exact kernel under the conversion's policies, and its value ``fl32((value(code) * s) * ts)``.

:func:`amax_encode_rows` computes the same from float32 bit patterns with per-tensor tables:

1. **Scale code.** ``g`` is monotone in ``A`` (two divisions by positive constants, each
   rounded to nearest) and ``R_S`` is monotone. ``_amax_tables._scale_boundaries`` reads from
   ``store_scale`` itself, once per format, the boundary ``beta_c`` between codes ``c - 1`` and
   ``c`` (``c >= 2``, the midpoint of their values) and whether ``beta_c`` rounds up, and
   certifies it: ``beta_c``'s float64 neighbours round to codes ``c - 1`` and ``c``, every scale
   value to itself, large raw scales to the largest code, tiny positive ones to code 1, and
   ``scale_codes`` maps the value of code ``c`` to ``c``. So ``S(0) = 0`` and, for ``A > 0``,
   ``S(A) = 1 + #{c >= 2 : g(A) > beta_c, or g(A) = beta_c rounding up}``, i.e. ``S(A) =
   #{c >= 1 : pattern(A) >= B[c]}`` with ``B[1] = 1`` and ``B[c]`` the smallest float32
   pattern whose ``g`` reaches ``beta_c``. :func:`lowbit.formats._amax_tables.amax_tables`
   finds each ``B[c]`` (a walk from an estimate with the same two divisions, a bisection if
   that fails) and then *certifies* it with the engine's own ``amax_quotient``: ``B[c]``
   reaches ``beta_c`` and ``B[c] - 1`` does not (an unreached ``B[c]`` means the largest finite
   float32 does not reach it); a failed certificate sends the tensor to the exact path. In the
   kernel the count is ``BIN[e] + #{B[BIN[e]+1 .. BIN[e]+16] <= pattern}`` for a normal amax of
   biased exponent ``e`` (``BIN[e]``: thresholds below ``2**(e-127)``; taken when no float32
   binade holds more than 16 thresholds, checked per tensor), else a binary search over ``B``.
   16-element blocks go 16 at a time (:func:`_encode_tiles`): where the thresholds repeat one
   float32 binade apart (``2**mbits`` scale codes per binade), the count is ``min((e << mbits)
   + offset + #{j : mantissa >= M[j]}, cmax)``; ``_amax_tables._periodic`` checks that rule
   against ``B`` on every float32 binade (at its start, at every ``M[j]`` and at every
   threshold in it: both sides are step functions that change only there) and keeps the run
   of binades where it holds; a tile with an amax outside that run (or a NaN / Inf block)
   takes the per-block count above.
2. **Element codes.** For ``x`` float32 (24 significant bits) and ``div = s * ts`` (at most
   ``p_s + 24`` bits, ``p_s <= 8`` for the scale formats taken), every rounding boundary ``t_j``
   of ``E`` (midpoint of two adjacent magnitudes, at most ``E.mbits + 2 <= 4`` bits) gives an
   exact float64 product ``m_j = t_j * div`` (<= 36 bits, normal). If ``|x| != m_j``,
   ``|x - m_j|`` is a nonzero multiple of ``min(ulp(x), ulp(m_j)) >= m_j * 2**-37`` (for ``|x|``
   within a factor 2 of ``m_j``), so ``|x / div - t_j| >= t_j * 2**-37``, far more than the
   float64 rounding of the quotient (``<= t_j * 2**-53``): ``fl64(|x| / div)`` lies on the same
   side of ``t_j`` as ``|x|`` of ``m_j``, and equals ``t_j`` exactly when ``|x| = m_j``.
   ``R_E`` of a quotient is nearest-even: its magnitude code is ``j + 1`` or more exactly when
   the quotient exceeds ``t_j``, or equals it and the tie rounds up; above the largest
   magnitude the policy's answer is the largest finite code (the path requires that). So the
   magnitude code is ``#{j : pattern(|x|) >= U_j}`` with ``U_j`` the smallest float32 pattern
   ``> m_j`` (tie down) or ``>= m_j`` (tie up); the sign bit of ``x`` is OR-ed in (RNE is
   symmetric; ``-0.0`` keeps its sign, as in the exact kernel). :func:`lowbit.formats._amax_tables.amax_params` reads every
   tie direction from the exact kernel itself and certifies the boundary (``t_j``'s float64
   neighbours, the grid values, the sign, the overflow answer); a format or policy that fails
   is refused.
3. **Values.** ``fl32((value(n) * s) * ts)`` per scale code and magnitude, computed in float64
   the way the engine does and stored as float32 (:func:`lowbit.formats._amax_tables.amax_tables`); the kernel selects it by
   the same comparisons and ORs the sign in (the product is symmetric in the sign).

NaN / Inf blocks (amax pattern ``>= 0x7F800000``) get codes 0, values NaN, scale NaN and the
engine's scale code of a bad block. The tensor amax is the largest magnitude pattern over the
blocks without NaN / Inf, as ``RowStats`` computes it: :func:`flat_amax_bits` over the whole tensor when that holds no NaN / Inf, else
:func:`finite_block_amax_bits` block by block.

Taken (:func:`lowbit.formats._amax_tables.amax_params`) for float32 / float16 input, ``scale_rule="amax"``, a symmetric format
whose block size is a multiple of :data:`lowbit.formats._simd.LANES`, a float scale format of at
most 8 bits whose non-negative values increase with the code, and a signed float element of at
most 4 bits under a policy whose overflow answer is the largest finite code (RNE,
``subnormal_output="keep"``: :func:`lowbit.formats._arith_scaled.scaled_params`). Everything else
(``overflow="error"``, stochastic rounding, float64 input, FP32 block scales) keeps the other
paths. ``tests/formats/test_arith_amax.py`` compares codes, scales, scale codes and values with
the exact kernel (``LOWBIT_SLOW_FORMATS=1``) and an ml_dtypes reference on adversarial inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lowbit.formats._amax_tables import (
    F32_INF,
    F32_NAN,
    K_SCODE_NAN,
    K_SIGN_BIT,
    K_SIGN_SH,
    K_TILE,
    K_TOP,
    K_WINDOW,
    AmaxTables,
)
from lowbit.formats._arith import _prefetch, _prefetch_w, _umax32
from lowbit.formats._simd import (
    LANES,
    MAG_MASK,
    ROW,
    vcodes16,
    vcount_le16,
    vmax16,
    vmax16x16,
    vperiodic_codes16,
    vvalues16,
)

GROUP_BLOCKS = 64
"""Blocks per group: their amaxes, then their scale codes, then their elements (so the
per-block dependency chains of one phase overlap)."""
PREFETCH_BYTES = 2048
"""How far ahead of the block being read its input is prefetched (a loop of 16-element blocks
issues too few loads to keep the hardware prefetcher ahead; 1-2 KiB measured best)."""
PREFETCH_OUT_BYTES = 1024
"""How far ahead (in input bytes) the outputs are prefetched for writing."""
CACHE_LINE = 64


@njit(cache=True, nogil=True)
def flat_amax_bits(u):
    """Largest float32 magnitude pattern of ``u`` (NaN / Inf patterns included: a result
    ``>= 0x7F800000`` means the tensor holds one). One flat loop, vectorised by numba."""
    m = np.uint32(0)
    for i in range(u.shape[0]):
        m = _umax32(u[i] & np.uint32(MAG_MASK), m)
    return m


@njit(cache=True, nogil=True)
def finite_block_amax_bits(u, nrows, k):
    """Largest float32 magnitude pattern of the ``nrows`` blocks of ``k`` patterns ``u`` over
    the blocks without NaN / Inf (0 if none)."""
    uk = np.uint64(k)
    m = np.uint32(0)
    for r in range(nrows):
        bm = np.uint32(0)
        for i in range(np.uint64(r) * uk, np.uint64(r + 1) * uk, np.uint64(LANES)):
            bm = _umax32(vmax16(u, i), bm)
        if bm < np.uint32(F32_INF):
            m = _umax32(bm, m)
    return m


def amax_encode_rows(u, nrows, k, T: AmaxTables, codes_out, vals_out, scale_out, scode_out,
                     bad_out):
    """Encode ``nrows`` blocks of ``k`` float32 patterns ``u`` (row-major) with the tables
    ``T`` of :func:`lowbit.formats._amax_tables.amax_tables`. Writes codes (``codes_out`` uint8, or empty), float32 value
    bits (``vals_out`` uint32, or empty), and unless empty the scale (``scale_out`` float64, NaN
    for a NaN / Inf block), the scale code (``scode_out``) and (unless empty) ``bad_out`` (the
    block held NaN / Inf). 16-element blocks go 16 at a time through :func:`_encode_tiles` when the periodic
    scale rule exists, the rest (and every other block size) through :func:`_encode_groups`."""
    tiles = nrows // LANES if k == LANES and T.K[K_TILE] else 0
    if tiles:
        _encode_tiles(u, tiles, T.B, T.BIN, T.thr, T.vals, T.svals, T.K, T.M, T.PAR, codes_out,
                      vals_out, scale_out, scode_out, bad_out)
    r0 = tiles * LANES
    if r0 == nrows:
        return
    i0 = r0 * k

    def part(a, start):
        return a[start:] if a.size else a
    _encode_groups(u[i0:], nrows - r0, k, T.B, T.BIN, T.thr, T.vals, T.svals, T.K,
                   part(codes_out, i0), part(vals_out, i0), part(scale_out, r0),
                   part(scode_out, r0), part(bad_out, r0))


@njit(cache=True, nogil=True)
def _encode_tiles(u, ntiles, T_B, T_BIN, thr, vals, svals, K, M, PAR, codes_out, vals_out,
                  scale_out, scode_out, bad_out):
    """The first ``16 * ntiles`` blocks of 16 patterns, 16 blocks at a time: their maxima by
    one transposed max tree, their scale codes by the periodic rule in one vector step; a tile
    with a block outside the rule's binades (or NaN / Inf) goes through :func:`_encode_groups`."""
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    want_scales = scale_out.shape[0] == u.shape[0] // LANES
    want_bad = bad_out.shape[0] == u.shape[0] // LANES
    lanes = np.uint64(LANES)
    tile = np.uint64(LANES * LANES)
    ahead = np.uint64(PREFETCH_BYTES // 4)
    ahead_out = np.uint64(PREFETCH_OUT_BYTES // 4)
    row = np.uint64(ROW)
    sign_sh, sign_bit = K[K_SIGN_SH], K[K_SIGN_BIT]
    am = np.empty(LANES, np.uint32)
    cs = np.empty(LANES, np.uint32)
    for t in range(np.uint64(ntiles)):
        i0 = t * tile
        r0 = t * lanes
        for b in range(lanes):
            _prefetch(u, i0 + ahead + b * lanes)
            if want_vals:
                _prefetch_w(vals_out, i0 + ahead_out + b * lanes)
        if want_codes:
            for b in range(np.uint64(0), tile, np.uint64(CACHE_LINE)):
                _prefetch_w(codes_out, i0 + ahead_out + b)
        vmax16x16(u, i0, am)
        if vperiodic_codes16(am, M, PAR, cs):
            _encode_groups(u[i0:i0 + tile], LANES, LANES, T_B, T_BIN, thr, vals, svals, K,
                           codes_out[i0:i0 + tile] if want_codes else codes_out,
                           vals_out[i0:i0 + tile] if want_vals else vals_out,
                           scale_out[r0:r0 + lanes] if want_scales else scale_out,
                           scode_out[r0:r0 + lanes] if want_scales else scode_out,
                           bad_out[r0:r0 + lanes] if want_bad else bad_out)
            continue
        for b in range(lanes):
            c = np.uint64(cs[b])
            if want_scales:
                scale_out[r0 + b] = svals[c]
                scode_out[r0 + b] = c
            if want_bad:
                bad_out[r0 + b] = False
            if want_codes:
                vcodes16(u, i0 + b * lanes, thr, c * row, sign_sh, sign_bit, codes_out)
            if want_vals:
                vvalues16(u, i0 + b * lanes, thr, c * row, vals, vals_out)


@njit(cache=True, nogil=True)
def _encode_groups(u, nrows, k, T_B, T_BIN, thr, vals, svals, K, codes_out, vals_out,
                   scale_out, scode_out, bad_out):
    """Blocks of any size ``k`` (a multiple of 16), :data:`GROUP_BLOCKS` at a time: maxima,
    then scale codes by the window count or the binary search, then elements.

    No helper functions in the loops (a cached njit callee is not inlined: a call per block);
    unsigned indices (numba adds a negative-index wraparound to signed ones)."""
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    want_scales = scale_out.shape[0] == nrows
    want_bad = bad_out.shape[0] == nrows
    uk = np.uint64(k)
    lanes = np.uint64(LANES)
    row = np.uint64(ROW)
    G = np.uint64(GROUP_BLOCKS)
    ahead = np.uint64(PREFETCH_BYTES // 4)
    sign_sh, sign_bit = K[K_SIGN_SH], K[K_SIGN_BIT]
    window = K[K_WINDOW] != 0
    top = np.uint64(K[K_TOP])
    scode_nan = K[K_SCODE_NAN]
    am = np.empty(GROUP_BLOCKS, np.uint32)
    rb = np.empty(GROUP_BLOCKS, np.uint64)
    nr = np.uint64(nrows)
    for g0 in range(np.uint64(0), nr, G):
        g1 = min(g0 + G, nr)
        if uk == lanes:  # one vector per block (NVFP4)
            for r in range(g0, g1):
                _prefetch(u, r * uk + ahead)
                am[r - g0] = vmax16(u, r * uk)
        else:
            for r in range(g0, g1):
                i0 = r * uk
                _prefetch(u, i0 + ahead)
                m = np.uint32(0)
                for j in range(np.uint64(0), uk, lanes):
                    m = _umax32(vmax16(u, i0 + j), m)
                am[r - g0] = m
        nbad = 0
        for r in range(g0, g1):
            a = am[r - g0]
            bad = a >= np.uint32(F32_INF)
            e = a >> np.uint32(23)
            if bad:
                c = np.uint64(0)
            elif window and e != 0:  # BIN[e] thresholds below the binade, <= 16 in it
                b0 = np.uint64(T_BIN[e])
                c = b0 + np.uint64(vcount_le16(T_B, b0 + np.uint64(1), a))
            else:  # binary search: the largest c with B[c] <= a
                c = np.uint64(0)
                st = top
                while st != 0:
                    c += st * np.uint64(T_B[c + st] <= a)
                    st >>= np.uint64(1)
            rb[r - g0] = c * row
            nbad += bad
            if want_bad:
                bad_out[r] = bad
            if want_scales:
                scale_out[r] = np.nan if bad else svals[c]
                scode_out[r] = scode_nan if bad else c
        if want_codes and uk == lanes:
            for r in range(g0, g1):
                vcodes16(u, r * uk, thr, rb[r - g0], sign_sh, sign_bit, codes_out)
        elif want_codes:
            for r in range(g0, g1):
                c8 = rb[r - g0]
                for i in range(r * uk, (r + np.uint64(1)) * uk, lanes):
                    vcodes16(u, i, thr, c8, sign_sh, sign_bit, codes_out)
        if want_vals and uk == lanes:
            for r in range(g0, g1):
                vvalues16(u, r * uk, thr, rb[r - g0], vals, vals_out)
        elif want_vals:
            for r in range(g0, g1):
                c8 = rb[r - g0]
                for i in range(r * uk, (r + np.uint64(1)) * uk, lanes):
                    vvalues16(u, i, thr, c8, vals, vals_out)
        if nbad:
            for r in range(g0, g1):
                if am[r - g0] >= np.uint32(F32_INF):
                    for i in range(r * uk, (r + np.uint64(1)) * uk):
                        if want_codes:
                            codes_out[i] = 0
                        if want_vals:
                            vals_out[i] = np.uint32(F32_NAN)
