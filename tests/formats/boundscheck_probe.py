"""Exercise every numba kernel of lowbit.formats and lowbit.kernels on adversarial inputs and
return a digest of all results. ``test_boundscheck.py`` runs it in a subprocess with
``NUMBA_BOUNDSCHECK=1`` (every array index checked; an out-of-range index raises IndexError) and
a fresh ``NUMBA_CACHE_DIR`` (so no kernel compiled without bounds checks is loaded from the
on-disk cache), and compares the digest with one computed without bounds checks."""

import hashlib

import numpy as np

from lowbit.formats import (
    QuantizedTensor,
    decode,
    encode,
    get_format,
    quantize,
    rounding_table,
    stochastic_bits,
)
from lowbit.kernels import numba_gemm, numba_quant


def _inputs():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((64, 96)) * np.exp2(rng.integers(-30, 30, (64, 96)))).astype(
        np.float32)
    x[0, :32] = [2.0**100, -2.0**-30] + [0.0] * 30      # a block spanning more than 2^126
    x[1, :32] = np.float32(1e-45) * np.arange(32)         # float32 subnormals
    x[2, 5], x[3, 7], x[4, 0] = np.nan, np.inf, -np.inf   # NaN / Inf blocks
    x[5, :] = 3.4e38                                        # huge
    x[6, :40] = -0.0
    u = np.arange(0, 1 << 32, 65521, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return x, u[np.isfinite(u) | np.isnan(u)][:20000]


def digest() -> str:
    h = hashlib.sha256()

    def add(a):
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())

    x, bits = _inputs()
    big = np.tile(x, (12, 8))  # > 65536 elements: the parallel kernel twins too
    for name in ("fp8_e4m3", "fp4_e2m1", "e8m0", "int8", "bf16", "int32", "p3109_k8p3se"):
        for src in (bits, bits.astype(np.float64)):
            for rnd in ("rne", "stochastic"):
                add(encode(src, name, rounding=rnd, seed=1, nan_input="zero"))
                add(quantize(src, name, rounding=rnd, seed=1, nan_input="zero"))
        add(decode(np.arange(1 << min(get_format(name).bits, 16)), name))
        if get_format(name).bits <= 8:
            add(rounding_table(name, nan_input="zero")[1])
    for name in ("mxfp4", "mxfp8_e4m3", "mxfp6_e2m3", "nvfp4", "int4_g128", "int8_pc", "int8_pt",
                 "int4_g128_asym", "mxint8"):
        for src in (x, x.astype(np.float64)):
            for axis in ((-1, 0) if name == "mxfp4" else (-1,)):
                qt = encode(src, name, axis=axis)
                add(qt.codes)
                add(qt.scales)
                add(quantize(src, name, axis=axis))
                add(QuantizedTensor.from_bytes(qt.to_bytes()).dequantize())
    add(stochastic_bits(5, 1000, 17))
    for f in ("fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "fp6_e2m3"):
        for table in (True, False):
            c = numba_quant.fp8_quantize(bits[np.isfinite(bits)], f, table=table)
            add(c)
        add(numba_quant.fp8_dequantize(np.arange(1 << get_format(f).bits, dtype=np.uint8), f))
    add(quantize(big, "mxfp4"))  # > 65536 elements: parallel kernel twins
    for f in ("mxfp8_e4m3", "mxfp4", "mxfp6_e3m2"):
        for rule in ("floor", "rceil"):
            c, s = numba_quant.mx_quantize(big, f, rule)
            add(c)
            add(s)
            add(numba_quant.mx_dequantize(c, s, big.shape[1], f))
    for prof in ("lowbit", "te"):
        c, s, ts = numba_quant.nvfp4_quantize(x, prof)
        add(c)
        add(s)
        add(numba_quant.nvfp4_dequantize(c, s, x.shape[1], ts))
    a = np.nan_to_num(x[:16], nan=0.0, posinf=1.0, neginf=-1.0)
    ca, sa = numba_quant.mx_quantize(a, "mxfp4")
    add(numba_gemm.mxfp4_gemm(ca, sa, ca, sa, a.shape[1]))
    ca, sa, ta = numba_quant.nvfp4_quantize(a)
    add(numba_gemm.nvfp4_gemm(ca, sa, ta, ca, sa, ta, a.shape[1]))
    return h.hexdigest()


def bounds_checking_is_on() -> bool:
    """Whether this process compiles numba kernels with bounds checks (an out-of-range index
    in a fresh kernel raises IndexError)."""
    from numba import njit

    @njit
    def past_the_end(a):
        return a[a.shape[0]]

    try:
        past_the_end(np.zeros(3))
    except IndexError:
        return True
    return False


if __name__ == "__main__":
    if not bounds_checking_is_on():
        raise SystemExit("NUMBA_BOUNDSCHECK=1 did not take effect")
    print(digest())
