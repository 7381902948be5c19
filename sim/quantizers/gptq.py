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
3. ``U = chol(H^-1)``, the upper Cholesky factor of the inverse, as the reference implementation
   computes it (``cholesky``, ``cholesky_inverse``, ``cholesky(upper=True)``): LAPACK ``potrf``,
   ``potri``, ``potrf``.
4. Lazy batches of ``blocksize`` columns (rounded up to a multiple of the format block), split
   into sub-batches of ``SUB_BLOCK`` columns (a second level of the same lazy update); inside a
   sub-batch, column by column: quantise ``q = RTN(w_col)``, ``err = (w_col - q) / U_jj``,
   ``W[:, j:] -= err U_j,j:`` inside the sub-batch; after a sub-batch one GEMM updates the rest
   of the batch, after a batch one GEMM updates the rest of the matrix.  Every column receives
   the same updates as in Alg. 1, summed in a different order (GEMMs instead of one column at a
   time); a group's scale is computed when all its columns are up to date (sub-batches are
   aligned with the format's groups).  The weights are held transposed (K, M) so that a column
   is a contiguous row.
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
from scipy.linalg import lapack
from threadpoolctl import ThreadpoolController

import lowbit.formats as lf

from ..operands import block_len_along_k, quantize_elem, resolve
from .scales import (
    block_scales,
    quantize_with_scales,
    scale_grid_for,
    select_min,
    tensor_scale,
)

SUB_BLOCK = 32  # columns per inner lazy batch (see module docstring, step 4)
SMALL_LAYER_IN = 1024  # layers with at most this many inputs run single-threaded BLAS
_BLAS = ThreadpoolController()


def inverse_cholesky(H: np.ndarray) -> np.ndarray:
    """Upper Cholesky factor ``U`` of ``H^-1`` (``H^-1 = U^T U``) for symmetric positive definite
    ``H``: LAPACK ``potrf`` (H = R^T R), ``potri`` (H^-1 from R), ``potrf`` again.  ValueError if
    H (after dampening) is not positive definite."""
    R, info = lapack.dpotrf(H, lower=0, clean=1)
    if info == 0:
        Hinv, info = lapack.dpotri(R, lower=0)
    if info == 0:
        U, info = lapack.dpotrf(Hinv, lower=0, clean=1)
    if info != 0:
        raise ValueError(f"gptq: the dampened Hessian is not positive definite (LAPACK info "
                         f"{info}); raise percdamp")
    return U


def _sub_block(g: int, K: int) -> int:
    """Inner batch length compatible with group length ``g``: every group either starts a
    sub-batch or lies inside one (``g`` a multiple of it, or it a multiple of ``g``)."""
    if g >= K or g <= 1 or g % SUB_BLOCK == 0 or SUB_BLOCK % g == 0:
        return SUB_BLOCK
    return g


def _group_len(fmt, K):
    return block_len_along_k(fmt, K, "GPTQ") if fmt.kind == "block" else 1


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
    if K <= SMALL_LAYER_IN:
        with _BLAS.limit(limits=1, user_api="blas"):
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
    asym = f.kind == "block" and not f.symmetric
    H = hessian(calib_x, K) if H is None else np.array(H, dtype=np.float64, copy=True)
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0

    g = _group_len(f, K)
    is_block = f.kind == "block"
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
    U = inverse_cholesky(H)

    B = max(int(blocksize), 1)
    if g > 1 and g < K:
        B = -(-B // g) * g
    b2 = min(_sub_block(g, K), B)
    WT = np.ascontiguousarray(W.T)  # (K, M): row c is column c of the permuted W
    QT = np.zeros_like(WT)
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
        ET = np.empty((i2 - i1, M))  # scaled errors of the batch's columns
        for j1 in range(i1, i2, b2):
            j2 = min(j1 + b2, i2)
            for col in range(j1, j2):
                if is_block and g < K and starts[col]:
                    n = int(np.sum(grp[col:] == grp[col]))  # group columns (contiguous, <= g)
                    blk = np.zeros((M, g))
                    blk[:, :n] = WT[col:col + n].T
                    if search:
                        S_cur, Z_cur = _search_scales(blk, n, f, T, elem,
                                                      U[col:col + n, col:col + n], grid), None
                    else:
                        S_cur, Z_cur = group_params(blk)
                    Sg[:, grp[col]] = S_cur
                    if asym:
                        Zg[:, grp[col]] = Z_cur
                wcol = WT[col]
                if asym:
                    q = _asym_quant(wcol, S_cur, Z_cur, elem)
                elif is_block:
                    q = quantize_with_scales(wcol, S_cur, elem)
                else:
                    q = quantize_elem(wcol, elem)
                QT[col] = q
                dd = U[col, col]
                err = (wcol - q) / dd
                losses += (wcol - q) ** 2 / dd**2 / 2
                if col + 1 < j2:
                    WT[col + 1:j2] -= np.outer(U[col, col + 1:j2], err)
                ET[col - i1] = err
            if j2 < i2:  # the sub-batch's errors -> the rest of the batch
                WT[j2:i2] -= U[j1:j2, j2:i2].T @ ET[j1 - i1:j2 - i1]
        if i2 < K:  # the batch's errors -> the rest of the matrix
            WT[i2:] -= U[i1:i2, i2:].T @ ET
    Q = QT.T
    Qo = Q[:, inv]
    if return_info:
        return Qo, {"perm": perm, "loss": float(losses.sum()), "damp": damp,
                    "scales": Sg, "zero_points": Zg, "tensor_scale": T}
    return Qo
