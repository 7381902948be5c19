"""GPTQ (Frantar et al., ICLR 2023) for any lowbit element or block format.

``gptq_quantize(w, calib_x, fmt, blocksize=128, percdamp=0.01, act_order=False,
return_info=False)``: w (out, in) float weights (PyTorch Linear layout), calib_x (..., in)
calibration inputs of the layer.  Returns the dequantised quantised weights (out, in) float64
(and a dict with the permutation ``perm``, the proxy loss ``loss``, the dampening ``damp``, the
block scales used ``scales`` (out, n_groups; per-tensor scale included) and ``tensor_scale``, if
``return_info``).

Algorithm (paper Alg. 1 + the reference implementation):

1. ``H = 2 X^T X / n`` (n calibration rows); dead inputs (``H_jj == 0``) get ``H_jj = 1`` and
   ``w[:, j] = 0``; dampening ``H += percdamp * mean(diag H) * I``.
2. ``act_order``: process columns by decreasing ``H_jj``.  For block formats whole blocks are
   reordered (by their summed ``H_jj``) and columns inside each block by ``H_jj``, so every block
   stays a contiguous group of the original layout (MX / NVFP4 / INT-group blocks are fixed by the
   format).
3. ``U = chol(H^-1)`` (upper Cholesky factor of the inverse, via ``cho_factor`` / ``cho_solve``).
4. Lazy batches of ``blocksize`` columns (rounded up to a multiple of the format block); inside a
   batch, column by column: quantise ``q = RTN(w_col)``, ``err = (w_col - q) / U_jj``,
   ``W[:, j:] -= err U_j,j:`` inside the batch; after the batch, one GEMM updates the rest.
5. Scales: for block formats the block scale of a group is computed by the format's own rule
   (:mod:`lowbit.sim.quantizers.scales`) on the UPDATED weights of the whole group when its first
   column is reached; the columns are then rounded under that scale.  Per-channel (block -1)
   scales are computed at column 0 (the whole updated row = the original row), per-tensor and
   NVFP4 per-tensor scales once from the original weights.  Element formats (no scale) round each
   column to the format directly.  Zero-point formats (``int4_g128_asym``): scale and zero point
   of a group by the format's rule on the updated group, ``q = s * (clip(rint(w/s + z)) - z)``.
6. ``scale_search`` (MR-GPTQ's format-specific scale handling, Egiazarian et al. 2025): when a
   group is reached, each candidate scale ``block_scales(c * group)`` for ``c`` in the grid
   (E8M0 / power-of-two scales: {1/2, 1, 2}; other scale formats: 0.50, 0.55, ..., 1.00) is
   tried on the group's columns with the in-group error feedback, and each row keeps the scale
   with the smallest GPTQ objective ``sum_j ((w_j - q_j) / U_jj)^2``; the chosen scale is then
   used as in step 5.  Per-channel / per-tensor formats pick the row scale by the
   ``diag(H)``-weighted RTN error.  Symmetric formats only.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, cholesky

import lowbit.formats as lf

from ._formats import block_len_along_k, kind, quantize_elem, resolve
from .scales import (
    block_scales,
    quantize_with_scales,
    scale_grid_for,
    select_min,
    tensor_scale,
)


def _group_len(fmt, K):
    return block_len_along_k(fmt, K, "GPTQ") if kind(fmt) == "block" else 1


def _asym_params(blk, fmt):
    """(scale, zero point) per row of one group, by the format's own asymmetric rule."""
    qt = lf.encode(np.ascontiguousarray(blk), fmt, axis=-1)
    return (np.asarray(qt.scales, dtype=np.float64).reshape(blk.shape[0], -1)[:, 0],
            np.asarray(qt.zero_point, dtype=np.float64).reshape(blk.shape[0], -1)[:, 0])


def _asym_quant(w, s, z, elem):
    """``s * (clip(rint(w / s + z), qmin, qmax) - z)`` (``s == 0`` -> 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.clip(np.rint(np.where(s != 0, w / s, 0.0) + z), elem.qmin, elem.qmax)
    return np.where(s != 0, s * (c - z), 0.0)


def _search_row_scales(W, f, T, elem, hdiag, grid):
    """Per-row scale (per-channel / per-tensor formats) among ``grid`` multiples of the rule's
    scale minimising the ``diag(H)``-weighted RTN error (a cheap stand-in for the whole-row
    GPTQ objective)."""
    def cand(c):
        S = block_scales(W * c, f, T)[:, 0] * T
        e = W - quantize_with_scales(W, S[:, None], elem)
        return S, (e * e) @ hdiag

    return select_min(map(cand, grid))[0]


def hessian(calib_x, K):
    """``2 X^T X / n`` of calibration inputs (..., K)."""
    X = np.asarray(calib_x, dtype=np.float64).reshape(-1, K)
    if X.shape[0] == 0:
        raise ValueError("gptq: calib_x has no rows")
    return 2.0 * (X.T @ X) / X.shape[0]


def gptq_quantize(w, calib_x, fmt, blocksize=128, percdamp=0.01, act_order=False,
                  return_info=False, H=None, scale_search=False, scale_grid=None):
    """GPTQ-quantise w (out, in) to ``fmt``; see module docstring.  ``H`` may be given instead of
    being computed from ``calib_x``.  ``scale_search=True``: MR-GPTQ-style format-specific scale
    choice (module docstring, step 6) over ``scale_grid`` (default :func:`scale_grid`).  Layers with in <= 1024 run single-threaded BLAS (the small
    factorisations are 10-100x slower with oversubscribed BLAS threads on shared machines)."""
    K = np.shape(w)[-1]
    if K <= 1024:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover
            threadpool_limits = None
        if threadpool_limits is not None:
            with threadpool_limits(limits=1, user_api="blas"):
                return _gptq(w, calib_x, fmt, blocksize, percdamp, act_order, return_info, H,
                             scale_search, scale_grid)
    return _gptq(w, calib_x, fmt, blocksize, percdamp, act_order, return_info, H, scale_search,
                 scale_grid)


def _group_loss(Wg, S, elem, U):
    """Per-row GPTQ objective ``sum_j ((w_j - q_j) / U_jj)^2`` of one group's columns ``Wg``
    (M, n) quantised under per-row scales ``S`` (M,) with in-group error feedback (``U`` the
    group's (n, n) block of the Cholesky factor)."""
    W = Wg.copy()
    loss = np.zeros(W.shape[0])
    for j in range(W.shape[1]):
        q = quantize_with_scales(W[:, j], S, elem)
        err = (W[:, j] - q) / U[j, j]
        loss += err * err
        W[:, j:] -= np.outer(err, U[j, j:])
    return loss


def _search_scales(blk, n, f, T, elem, U, grid):
    """Per-row block scale (M,) among ``grid`` multiples of the rule's scale (re-rounded into
    the scale format by the format's rule) minimising :func:`_group_loss`."""
    def cand(c):
        S = block_scales(blk * c, f, T)[:, 0] * T
        return S, _group_loss(blk[:, :n], S, elem, U)

    return select_min(map(cand, grid))[0]


def _gptq(w, calib_x, fmt, blocksize, percdamp, act_order, return_info, H, scale_search=False,
          scale_grid=None):
    f = resolve(fmt)
    W = np.array(w, dtype=np.float64, copy=True)
    if W.ndim != 2:
        raise ValueError(f"gptq: w must be (out, in), got shape {W.shape}")
    M, K = W.shape
    if f is None:
        return (W, {}) if return_info else W
    asym = kind(f) == "block" and not getattr(f, "symmetric", True)
    H = hessian(calib_x, K) if H is None else np.array(H, dtype=np.float64, copy=True)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    g = _group_len(f, K)
    is_block = kind(f) == "block"
    elem = f.element if is_block else f
    T = tensor_scale(W, f) if is_block and not asym else 1.0
    ngroups = -(-K // g)

    d = np.diag(H)
    if act_order:
        if g == 1:
            perm = np.argsort(-d, kind="stable")
        else:
            nfull = K // g  # a ragged last group stays last (keeps groups batch-aligned)
            gs = np.array([d[i * g:(i + 1) * g].sum() for i in range(nfull)])
            order = list(np.argsort(-gs, kind="stable")) + ([nfull] if nfull < ngroups else [])
            perm = np.concatenate([
                i * g + np.argsort(-d[i * g:(i + 1) * g], kind="stable") for i in order])
    else:
        perm = np.arange(K)
    inv = np.argsort(perm)
    W = W[:, perm]
    H = H[np.ix_(perm, perm)]
    # position of every permuted column in its (original) group; group starts in permuted order
    grp = perm // g
    starts = np.r_[True, grp[1:] != grp[:-1]] if g > 1 else np.zeros(K, dtype=bool)

    damp = percdamp * float(np.mean(np.diag(H)))
    H[np.diag_indices(K)] += damp
    Hinv = cho_solve(cho_factor(H, lower=False), np.eye(K))
    U = cholesky((Hinv + Hinv.T) / 2, lower=False)

    B = max(int(blocksize), 1)
    if g > 1 and g < K:
        B = -(-B // g) * g
    Q = np.zeros_like(W)
    S_cur = None
    # per-channel / per-tensor scales at column 0 (W unchanged there)
    Sg = np.zeros((M, ngroups)) if is_block else None
    Zg = np.zeros((M, ngroups)) if asym else None
    Z_cur = None

    def group_params(blk):
        if asym:
            s_, z_ = _asym_params(blk, f)
            return s_, z_
        return block_scales(blk, f, T)[:, 0] * T, None

    search = bool(scale_search) and is_block and not asym
    grid = scale_grid_for(f, scale_grid) if search else None
    if is_block and g >= K:
        S_cur, Z_cur = group_params(W[:, inv])
        if search:  # one scale per row over the whole K: diag(H)-weighted RTN error
            S_cur = _search_row_scales(W, f, T, elem, np.diag(H), grid)
        Sg[:, 0] = S_cur
        if asym:
            Zg[:, 0] = Z_cur
    losses = np.zeros(M)
    for i1 in range(0, K, B):
        i2 = min(i1 + B, K)
        W1 = W[:, i1:i2].copy()
        Q1 = np.zeros_like(W1)
        E1 = np.zeros_like(W1)
        U1 = U[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if is_block and g < K and starts[col]:
                n = int(np.sum(grp[col:] == grp[col]))  # group columns (contiguous, <= g)
                blk = np.zeros((M, g))
                blk[:, :n] = W1[:, i:i + n]
                if search:
                    S_cur, Z_cur = _search_scales(blk, n, f, T, elem, U1[i:i + n, i:i + n],
                                                  grid), None
                else:
                    S_cur, Z_cur = group_params(blk)
                Sg[:, grp[col]] = S_cur
                if asym:
                    Zg[:, grp[col]] = Z_cur
            wcol = W1[:, i]
            if asym:
                q = _asym_quant(wcol, S_cur, Z_cur, elem)
            elif is_block:
                q = quantize_with_scales(wcol, S_cur, elem)
            else:
                q = quantize_elem(wcol, elem)
            Q1[:, i] = q
            dd = U1[i, i]
            err = (wcol - q) / dd
            losses += (wcol - q) ** 2 / dd**2 / 2
            W1[:, i:] -= np.outer(err, U1[i, i:])
            E1[:, i] = err
        Q[:, i1:i2] = Q1
        W[:, i2:] -= E1 @ U[i1:i2, i2:]
    Qo = Q[:, inv]
    if return_info:
        return Qo, {"perm": perm, "loss": float(losses.sum()), "damp": damp,
                    "scales": Sg, "zero_points": Zg, "tensor_scale": T}
    return Qo
