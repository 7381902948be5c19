"""Run a conversion on the fast paths and on the exact kernel (``LOWBIT_SLOW_FORMATS=1``), for
the fast-path equality tests, and the NVFP4 blocks built around exact ties that they share
(module name unique: tests run with ``--import-mode=importlib``)."""

import numpy as np
import pytest

from lowbit.formats import encode, get_format, quantize
from lowbit.formats.convert import SLOW_FORMATS_ENV


def encode_and_quantize(x, fmt, slow: bool, **kw):
    """``(encode(x, fmt, **kw), quantize(x, fmt, **kw))``, or the ValueError's message; with
    ``slow`` every conversion takes the exact kernel."""
    mp = pytest.MonkeyPatch()
    with mp.context() as m:
        if slow:
            m.setenv(SLOW_FORMATS_ENV, "1")
        try:
            return encode(x, fmt, **kw), quantize(x, fmt, **kw)
        except ValueError as err:
            return str(err)


F32 = np.float32
E2M1_BOUNDARIES = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])
E2M1_GRID = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def nvfp4_tie_blocks(k: int = 0, seed: int = 0) -> np.ndarray:
    """(n, 16) float32 NVFP4 rows whose quotients hit every E2M1 rounding boundary exactly: the
    tensor amax is ``2688 * 2**k`` (tensor scale ``2**k`` exactly), each block's amax
    ``6 * s0 * 2**k`` for a UE4M3 value ``s0`` (block scale ``s0`` exactly), the other elements
    the boundaries ``b * s0 * 2**k`` (ties), one float32 ulp either side, grid points, signed
    zeros; blocks whose amax rounds the scale down (saturating elements); NaN / Inf, all-zero,
    all ``-0.0`` and float32-subnormal blocks."""
    rng = np.random.default_rng(seed)
    ue4m3 = get_format("ue4m3").values()
    ue4m3 = ue4m3[np.isfinite(ue4m3) & (ue4m3 > 0)]
    ts = 2.0 ** k
    rows = [np.zeros(16)]
    rows[0][0] = 2688 * ts  # the tensor amax
    units = np.concatenate([E2M1_BOUNDARIES, E2M1_GRID])
    for s0 in ue4m3:
        row = units[rng.integers(0, units.size, 16)] * s0 * ts
        row[0] = 6 * s0 * ts  # block amax: scale s0 exactly
        r32 = row.astype(F32)
        step = rng.integers(-1, 2, 16).astype(np.int32)
        step[0] = 0
        r32 = (r32.view(np.int32) + np.where(r32 != 0, step, 0)).view(F32)
        r32 = np.minimum(r32, F32(row[0]))
        r32 = np.where(rng.random(16) < 0.5, -r32, r32)
        rows.append(r32.astype(np.float64))
        if 6 * s0 * 1.0625 < 2688:  # keep the tensor amax (and scale 2**k) unchanged
            sat = row.copy()  # amax between two scales: rounds the scale down, saturates
            sat[0] = 6 * s0 * ts * 1.0624
            rows.append(sat)
    special = np.zeros((6, 16))
    special[1] = -0.0
    special[2, 3] = np.nan
    special[3, 5] = -np.inf
    special[4] = 1e-45 * np.arange(1, 17)
    special[5, 1::2] = -0.0
    return np.concatenate([np.array(rows), special]).astype(F32)


def assert_same_as_exact(x, fmt, **kw):
    """Codes, scales, scale codes, tensor scale and value bytes of ``encode`` / ``quantize`` on
    the fast paths equal those of the exact kernel (or both raise the same message)."""
    got = encode_and_quantize(x, fmt, False, **kw)
    ref = encode_and_quantize(x, fmt, True, **kw)
    if isinstance(ref, str) or isinstance(got, str):
        assert got == ref
        return
    (qa, va), (qb, vb) = got, ref
    name = getattr(fmt, "name", fmt)
    np.testing.assert_array_equal(qa.codes, qb.codes, err_msg=f"{name} {kw}")
    np.testing.assert_array_equal(np.asarray(qa.scales), np.asarray(qb.scales))
    if qb.scale_codes is not None:
        np.testing.assert_array_equal(qa.scale_codes, qb.scale_codes)
    assert qa.tensor_scale == qb.tensor_scale
    assert va.dtype == vb.dtype
    np.testing.assert_array_equal(va.view(np.uint8), vb.view(np.uint8), err_msg=f"{name} {kw}")
