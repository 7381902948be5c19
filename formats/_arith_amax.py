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

NaN / Inf blocks (amax pattern ``>= 0x7F800000``) get codes 0, values NaN and the engine's scale
code of a bad block (whose value, NaN, :attr:`lowbit.formats.qtensor.QuantizedTensor.scales`
decodes: the pass writes scale codes only, one byte per block). The tensor amax is the largest
magnitude pattern over the blocks without NaN / Inf, as ``RowStats`` computes it. The first
pass, :func:`block_amax_bits`, writes every block's maximum (4 bytes per 16 elements) and
returns that largest finite one; the second pass reads the maxima instead of recomputing them
(:func:`amax_encode_rows` computes them itself when not given: float16 input, rows that are not
views of the input). Element codes go 4 blocks per 64-byte store by a 3-step binary search over
each block's thresholds (:func:`lowbit.formats._simd.vcodes16x4`).

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
    BLOCKS_PER_STORE,
    LANES,
    MAG_MASK,
    ROW,
    SIGN_SH_MIN,
    block_maxima,
    vcodes16,
    vcodes16x4,
    vcount_le16,
    vmax16x16,
    vmax_below16,
    vperiodic_codes16,
    vstore8_16,
    vvalues16,
)

GROUP_BLOCKS = 64
"""Blocks per group: their amaxes, then their scale codes, then their elements (so the
per-block dependency chains of one phase overlap)."""
PREFETCH_BYTES = 8192
"""How far ahead of the block being read its input is prefetched (a loop of 16-element blocks
issues too few loads to keep the hardware prefetcher ahead; 8 KiB measured best for both
passes, against 1-8 KiB, streaming 2**24 values on 2 threads)."""
PREFETCH_OUT_BYTES = 4096
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
def block_amax_bits(u, nrows, k, am_out):
    """``am_out[r]`` = the largest float32 magnitude pattern of block ``r`` (``u[r*k:(r+1)*k]``,
    NaN / Inf patterns included) for ``r < nrows``. Returns the largest of them below
    ``0x7F800000`` (0 if none): the tensor amax over the blocks without NaN / Inf, as
    ``RowStats`` computes it. 16-element blocks (NVFP4) go 16 at a time (:func:`vmax16x16`,
    their input prefetched :data:`PREFETCH_BYTES` ahead, the finite maximum taken per 16),
    the rest through :func:`lowbit.formats._simd.block_maxima`."""
    uk = np.uint64(k)
    lanes = np.uint64(LANES)
    nr = np.uint64(nrows)
    ahead = np.uint64(PREFETCH_BYTES // 4)
    inf = np.uint32(F32_INF)
    m = np.uint32(0)
    r = np.uint64(0)
    if uk == lanes:
        while r + lanes <= nr:
            i0 = r * uk
            for b in range(lanes):
                _prefetch(u, i0 + ahead + b * lanes)
            vmax16x16(u, i0, am_out, r)
            m = _umax32(vmax_below16(am_out, r, inf), m)
            r += lanes
    block_maxima(u, r * uk, nr - r, uk, am_out, r)
    for rr in range(r, nr):
        if am_out[rr] < inf:
            m = _umax32(am_out[rr], m)
    return m


def amax_encode_rows(u, nrows, k, T: AmaxTables, am, codes_out, vals_out, scode_out):
    """Encode ``nrows`` blocks of ``k`` float32 patterns ``u`` (row-major) with the tables
    ``T`` of :func:`lowbit.formats._amax_tables.amax_tables`, given the blocks' magnitude maxima
    ``am`` (uint32, from :func:`block_amax_bits`), or computing them when ``am`` is empty.
    Writes codes (``codes_out`` uint8, or empty), float32 value bits (``vals_out`` uint32, or
    empty) and, unless empty, the scale codes (``scode_out``; the engine's code of a bad block
    for one with NaN / Inf). 16-element blocks go 16 at a time through :func:`_encode_tiles`
    when the periodic scale rule exists, the rest (and every other block size) through
    :func:`_encode_groups`."""
    # (a sign-magnitude code: the magnitude count stays below the sign bit)
    tiles = nrows // LANES if (k == LANES and T.K[K_TILE] and T.K[K_SIGN_SH] >= SIGN_SH_MIN
                               ) else 0
    if tiles:
        _encode_tiles(u, am, tiles, T.B, T.BIN, T.thr, T.vals, T.K, T.M, T.PAR, codes_out,
                      vals_out, scode_out)
    r0 = tiles * LANES
    if r0 == nrows:
        return
    i0 = r0 * k

    def part(a, start):
        return a[start:] if a.size else a
    _encode_groups(u[i0:], part(am, r0), nrows - r0, k, T.B, T.BIN, T.thr, T.vals, T.K,
                   part(codes_out, i0), part(vals_out, i0), part(scode_out, r0))


@njit(cache=True, nogil=True)
def _encode_tiles(u, am_in, ntiles, T_B, T_BIN, thr, vals, K, M, PAR, codes_out, vals_out,
                  scode_out):
    """The first ``16 * ntiles`` blocks of 16 patterns, 16 blocks at a time: their maxima from
    ``am_in`` (or, when it is empty, by one transposed max tree), their scale codes by the
    periodic rule in one vector step, their codes 4 blocks per store (:func:`vcodes16x4`); a
    tile with a block outside the rule's binades (or NaN / Inf) goes through
    :func:`_encode_groups`."""
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    want_scodes = scode_out.shape[0] == u.shape[0] // LANES
    have_am = am_in.shape[0] != 0
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
        if have_am:
            off = vperiodic_codes16(am_in, r0, M, PAR, cs)
        else:
            vmax16x16(u, i0, am, np.uint64(0))
            off = vperiodic_codes16(am, np.uint64(0), M, PAR, cs)
        if off:
            _encode_groups(u[i0:i0 + tile], am_in[r0:r0 + lanes] if have_am else am, LANES,
                           LANES, T_B, T_BIN, thr, vals, K,
                           codes_out[i0:i0 + tile] if want_codes else codes_out,
                           vals_out[i0:i0 + tile] if want_vals else vals_out,
                           scode_out[r0:r0 + lanes] if want_scodes else scode_out)
            continue
        if want_scodes:
            vstore8_16(cs, scode_out, r0)
        if want_vals:
            for b in range(lanes):
                vvalues16(u, i0 + b * lanes, thr, np.uint64(cs[b]) * row, vals, vals_out)
        if want_codes:
            for b in range(np.uint64(0), lanes, np.uint64(BLOCKS_PER_STORE)):
                vcodes16x4(u, i0 + b * lanes, thr, cs, b, sign_sh, sign_bit, codes_out)


@njit(cache=True, nogil=True)
def _encode_groups(u, am_in, nrows, k, T_B, T_BIN, thr, vals, K, codes_out, vals_out,
                   scode_out):
    """Blocks of any size ``k`` (a multiple of 16), :data:`GROUP_BLOCKS` at a time: maxima (from
    ``am_in``, or computed when it is empty), then scale codes by the window count or the
    binary search, then elements.

    No helper functions in the loops (a cached njit callee is not inlined: a call per block);
    unsigned indices (numba adds a negative-index wraparound to signed ones)."""
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    want_scodes = scode_out.shape[0] == nrows
    have_am = am_in.shape[0] != 0
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
        if have_am:
            for r in range(g0, g1):
                am[r - g0] = am_in[r]
        else:
            for r in range(g0, g1):
                _prefetch(u, r * uk + ahead)
            block_maxima(u, g0 * uk, g1 - g0, uk, am, np.uint64(0))
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
            if want_scodes:
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
