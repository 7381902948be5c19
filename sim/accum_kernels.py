"""numba GEMM kernels, one per accumulator model: ``out[i, j] = acc_k A[i, k] * Bt[j, k]``.

These are the REFERENCE kernels: one straightforward loop nest per accumulator model, written
for clarity, not speed.  The fast paths of :mod:`lowbit.sim.fastpath` are tested bit for bit
against them, and ``LOWBIT_SLOW_GEMM=1`` makes the engine use only these.

All kernels take ``A`` (N, K) and ``Bt`` (M, K) C-contiguous float64 (or int64 for the integer
register) and return (N, M) float64.  Rows of ``out`` run in parallel (``prange``); within a row
the dot products follow the accumulator's stated order exactly, so results are deterministic
and independent of the thread count.  Float format parameters ``fp`` are a
:class:`~lowbit.sim.accum_round.FloatParams` named tuple.

``twoprod=True`` makes the kernels carry each product as an exact pair ``hi + lo`` (Dekker) for
operands whose significands together exceed 53 bits; otherwise products ``a*b`` are exact
float64 values by construction (the caller checks the significand budget).

Call the Python wrappers (:func:`gemm_exact`, :func:`gemm_chunk`, :func:`block_gemm_exact`,
:func:`block_gemm_round`, :func:`block_gemm_int`) with keyword arguments; they call the
``_``-prefixed numba kernels with keyword arguments too (mode flags are named constants).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .accum_round import (
    FLOAT64_PARAMS,
    MSUM_CAP,
    FloatParams,
    msum_add,
    msum_finalize,
    round_fmt,
    two_prod,
    two_sum,
)


@njit(parallel=True, cache=True)
def gemm_seq(A, Bt, fp):
    """Sequential FMA-style accumulation: acc = RNE(acc + a_k*b_k), k = 0..K-1 (exact products)."""
    N, K = A.shape
    M = Bt.shape[0]
    out = np.empty((N, M))
    for i in prange(N):
        a = A[i]
        j = 0
        while j + 4 <= M:
            b0 = Bt[j]
            b1 = Bt[j + 1]
            b2 = Bt[j + 2]
            b3 = Bt[j + 3]
            c0 = 0.0
            c1 = 0.0
            c2 = 0.0
            c3 = 0.0
            for k in range(K):
                ak = a[k]
                s, e = two_sum(c0, ak * b0[k])
                c0 = round_fmt(s, e, fp)
                s, e = two_sum(c1, ak * b1[k])
                c1 = round_fmt(s, e, fp)
                s, e = two_sum(c2, ak * b2[k])
                c2 = round_fmt(s, e, fp)
                s, e = two_sum(c3, ak * b3[k])
                c3 = round_fmt(s, e, fp)
            out[i, j] = c0
            out[i, j + 1] = c1
            out[i, j + 2] = c2
            out[i, j + 3] = c3
            j += 4
        while j < M:
            b0 = Bt[j]
            c0 = 0.0
            for k in range(K):
                s, e = two_sum(c0, a[k] * b0[k])
                c0 = round_fmt(s, e, fp)
            out[i, j] = c0
            j += 1
    return out


@njit(parallel=True, cache=True)
def gemm_pairwise(A, Bt, fp):
    """Adder tree: level-wise RNE(x[2t] + x[2t+1]) over exact products; odd tail moves up."""
    N, K = A.shape
    M = Bt.shape[0]
    out = np.empty((N, M))
    for i in prange(N):
        buf = np.empty(max(K, 1))
        for j in range(M):
            for k in range(K):
                buf[k] = A[i, k] * Bt[j, k]
            n = K
            if n == 0:
                out[i, j] = 0.0
                continue
            if n == 1:
                out[i, j] = round_fmt(buf[0], 0.0, fp)
                continue
            while n > 1:
                h = n // 2
                for t in range(h):
                    s, e = two_sum(buf[2 * t], buf[2 * t + 1])
                    buf[t] = round_fmt(s, e, fp)
                if n % 2 == 1:
                    buf[h] = buf[n - 1]
                    n = h + 1
                else:
                    n = h
            out[i, j] = buf[0]
    return out


def gemm_exact(A, Bt, *, twoprod: bool):
    """The Exact model: the exact dot products (Shewchuk expansion sum), correctly rounded once
    to float64; non-finite products propagate."""
    return _gemm_chunk(A, Bt, chunk=max(A.shape[1], 1), twoprod=twoprod, do_round=False,
                       fp=FLOAT64_PARAMS)


def gemm_chunk(A, Bt, *, chunk: int, twoprod: bool, fp: FloatParams):
    """``acc = RNE_fp(acc + exact sum of chunk products)`` per chunk of ``chunk`` products
    (chunk=1: exact-FMA steps)."""
    return _gemm_chunk(A, Bt, chunk=int(chunk), twoprod=twoprod, do_round=True, fp=fp)


@njit(parallel=True, cache=True)
def _gemm_chunk(A, Bt, chunk, twoprod, do_round, fp):
    """acc = RNE(acc + exact sum of ``chunk`` products) per chunk (chunk=1: exact-FMA steps).
    ``do_round=False`` with ``chunk >= K``: the Exact model - the exact dot product (Shewchuk
    expansion sum), correctly rounded once to float64; non-finite products propagate."""
    N, K = A.shape
    M = Bt.shape[0]
    out = np.empty((N, M))
    for i in prange(N):
        parts = np.empty(MSUM_CAP)
        for j in range(M):
            acc = 0.0
            for k0 in range(0, K, chunk):
                n = 0
                if acc != 0.0:
                    parts[0] = acc
                    n = 1
                special = 0.0
                for k in range(k0, min(k0 + chunk, K)):
                    if twoprod:
                        p, pe = two_prod(A[i, k], Bt[j, k])
                    else:
                        p = A[i, k] * Bt[j, k]
                        pe = 0.0
                    if abs(p) < np.inf:
                        n = msum_add(parts, n, p)
                        if pe != 0.0:
                            n = msum_add(parts, n, pe)
                    else:
                        special += p
                if special != 0.0 or special != special or not (abs(acc) < np.inf):
                    acc = acc + special
                    continue
                hi, rs = msum_finalize(parts, n)
                if do_round:
                    acc = round_fmt(hi, rs, fp)
                else:
                    acc = hi
            out[i, j] = acc
    return out


@njit(cache=True, inline="always")
def int_register(bits):
    """``(lo, hi, span)`` of a ``bits``-bit two's-complement register: ``lo = -2**(bits-1)``,
    ``hi = 2**(bits-1) - 1``, ``span = 2**bits`` (the arguments of :func:`int_step`)."""
    return -(np.int64(1) << (bits - 1)), (np.int64(1) << (bits - 1)) - 1, np.int64(1) << bits


@njit(cache=True, inline="always")
def int_step(acc, p, lo, hi, span, sat):
    """One add of a two's-complement register ``[lo, hi]`` (``span = hi - lo + 1``): saturate
    at the bounds (``sat``) or wrap modulo ``span``."""
    acc += p
    if sat:
        if acc > hi:
            acc = hi
        elif acc < lo:
            acc = lo
    else:
        acc = ((acc - lo) % span) + lo
    return acc


BLOCK_SUM_EXACT = 0  # across blocks: exact expansion sum, one rounding to float64
BLOCK_SUM_ROUND = 1  # across blocks: acc = RNE_fmt(acc + term), one rounding per block


def block_gemm_exact(Pa, Sa, Pw, Sw, *, block_len: int, plain: bool):
    """Block dot products summed exactly across blocks, correctly rounded once to float64."""
    return _block_gemm(Pa, Sa, Pw, Sw, bs=int(block_len), mode=BLOCK_SUM_EXACT, plain=plain,
                       fp=FLOAT64_PARAMS)


def block_gemm_round(Pa, Sa, Pw, Sw, *, block_len: int, plain: bool, fp: FloatParams):
    """Block dot products accumulated in K order with one RNE_fp rounding per block."""
    return _block_gemm(Pa, Sa, Pw, Sw, bs=int(block_len), mode=BLOCK_SUM_ROUND, plain=plain,
                       fp=fp)


@njit(parallel=True, cache=True)
def _block_gemm(Pa, Sa, Pw, Sw, bs, mode, plain, fp):
    """Block-scaled dot products (OCP MX v1.0 section 6 structure).

    Pa (N, nb*bs), Pw (M, nb*bs): element values; Sa (N, nb), Sw (M, nb): block scales.
    Per block b the inner sum sum_i Pa*Pw is EXACT: ``plain=True`` - a float64 running sum,
    exact because the caller proved that every partial sum is a fixed-point number of <= 53
    bits; ``plain=False`` - every product is scaled exactly (Dekker) and fed into an expansion
    sum.  The block term (Sa*Sw) * inner is carried exactly as hi + lo.  Across blocks:
    ``mode=BLOCK_SUM_EXACT`` -> exact expansion sum, result correctly rounded to float64;
    ``mode=BLOCK_SUM_ROUND`` -> acc = RNE_fmt(acc + term), ONE rounding per block, K order.
    """
    N, Kp = Pa.shape
    M = Pw.shape[0]
    nb = Kp // bs
    out = np.empty((N, M))
    for i in prange(N):
        parts = np.empty(MSUM_CAP)
        ip = np.empty(MSUM_CAP)
        for j in range(M):
            n = 0  # length of `parts` (BLOCK_SUM_EXACT: whole dot product)
            acc = 0.0
            special = 0.0
            for b in range(nb):
                k0 = b * bs
                sc = Sa[i, b] * Sw[j, b]
                buf = parts if mode == BLOCK_SUM_EXACT else ip
                m = n if mode == BLOCK_SUM_EXACT else 0
                if mode == BLOCK_SUM_ROUND and acc != 0.0:
                    ip[0] = acc
                    m = 1
                kk = k0
                while kk < k0 + bs:
                    if plain:
                        inner = 0.0
                        for k in range(k0, k0 + bs):
                            inner += Pa[i, k] * Pw[j, k]
                        kk = k0 + bs
                    else:
                        inner = Pa[i, kk] * Pw[j, kk]
                        kk += 1
                    hi, lo = two_prod(sc, inner)
                    if not (abs(hi) < np.inf):
                        special += hi
                        continue
                    m = msum_add(buf, m, hi)
                    if lo != 0.0:
                        m = msum_add(buf, m, lo)
                if mode == BLOCK_SUM_EXACT:
                    n = m
                elif abs(acc) < np.inf:
                    h, rs = msum_finalize(ip, m)
                    acc = round_fmt(h, rs, fp)
            if special != 0.0 or special != special:
                out[i, j] = special if mode == BLOCK_SUM_EXACT else acc + special
            elif mode == BLOCK_SUM_EXACT:
                out[i, j] = msum_finalize(parts, n)[0]
            else:
                out[i, j] = acc
    return out


def block_gemm_int(Ia, Sa, Iw, Sw, *, block_len: int, bits: int, saturate: bool, unit: float):
    """Integer-register block dot products (see :func:`_block_gemm_int`); one block of length K
    with unit scales is the plain integer-register GEMM."""
    return _block_gemm_int(Ia, Sa, Iw, Sw, bs=int(block_len), bits=int(bits),
                           sat=bool(saturate), unit=float(unit))


@njit(parallel=True, cache=True)
def _block_gemm_int(Ia, Sa, Iw, Sw, bs, bits, sat, unit):
    """Integer inner sums per block in a ``bits``-bit register (restarting at 0 per block):
    acc = wrap/saturate(acc + a_k*b_k) after every add; then the exact sum over blocks of
    (Sa*Sw*unit) * register, correctly rounded to float64.  Ia, Iw int64.  One block of
    length K with unit scales is the plain integer-register GEMM."""
    N, Kp = Ia.shape
    M = Iw.shape[0]
    nb = Kp // bs
    out = np.empty((N, M))
    lo_, hi_, span = int_register(bits)
    for i in prange(N):
        parts = np.empty(MSUM_CAP)
        for j in range(M):
            n = 0
            for b in range(nb):
                acc = np.int64(0)
                for k in range(b * bs, (b + 1) * bs):
                    acc = int_step(acc, Ia[i, k] * Iw[j, k], lo_, hi_, span, sat)
                hi, lo = two_prod(Sa[i, b] * Sw[j, b] * unit, float(acc))
                n = msum_add(parts, n, hi)
                if lo != 0.0:
                    n = msum_add(parts, n, lo)
            out[i, j] = msum_finalize(parts, n)[0]
    return out
