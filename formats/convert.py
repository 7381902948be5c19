"""Element conversion: ``quantize`` / ``encode`` / ``decode`` for element formats.

Rounding (one rounding from the exact float16/32/64 input value):

* ``"rne"`` nearest, ties to even code (IEEE 754 roundTiesToEven; OFP8 rule 1)
* ``"rna"`` nearest, ties away from zero
* ``"rtz"`` toward zero, ``"rup"`` toward +Inf, ``"rdown"`` toward -Inf
* ``"rto"`` round to odd (truncate, then set the LSB if inexact)
* ``"rnz"`` nearest, ties toward zero; ``"rno"`` nearest, ties to odd code
* stochastic modes, seeded by ``seed`` (int or ``numpy.random.Generator``); element ``i`` (flat
  C order) uses ``r_i``, the ``i``-th draw of ``rng.integers(0, 2**sr_bits, size=n,
  dtype=uint64)``; ``f`` is the discarded fraction of an ulp (IEEE P3109 interim report v3.1
  definitions as implemented by gfloat ``RoundMode``):

  - ``"stochastic"`` hardware style: round up iff ``floor(f * 2**sr_bits) + r >= 2**sr_bits``
    (``sr_bits`` random bits added below the LSB, then truncation; gfloat StochasticFastest)
  - ``"stochastic_fast"`` iff ``floor(f * 2**(sr_bits+1)) + 2r + 1 >= 2**(sr_bits+1)``
    (gfloat StochasticFast)
  - ``"stochastic_rne"`` / ``"stochastic_rno"`` iff ``round(f * 2**sr_bits) + r >= 2**sr_bits``
    with ties to even / odd (gfloat Stochastic / StochasticOdd)
  - ``"sr_half"`` ("SR-50", pychop rmode 6): an inexact value rounds up or down with
    probability 1/2 each (the top bit of ``r``); exact values are unchanged

  Aliases (gfloat / pychop spellings) are listed in :data:`ROUNDING_ALIASES`.

Policies (explicit, never silent):

* ``overflow``: ``"saturate"`` (+-max, also for +-Inf input even where the format has Inf:
  CUDA ``.satfinite``; P3109 SatFinite), ``"propagate"`` (finite overflow -> +-max, +-Inf input
  stays +-Inf where the format has Inf; P3109 SatPropagate),
  ``"nonsat"`` (Inf where the format has Inf, else NaN where it has NaN, else saturate; with the
  IEEE 754 7.4 rule that rtz / rup-of-negative / rdown-of-positive overflow to max. Reproduces
  ml_dtypes' casts, incl. Inf -> NaN for E4M3FN and 0 -> NaN for E8M0; P3109 OvfInf),
  ``"error"`` (raise). A negative input to an unsigned format with a zero gives +0 when its
  magnitude rounds to 0 or the rounding is ``rtz`` / ``rup``, else NaN under ``"nonsat"``
  (where the format has NaN), +0 under ``"saturate"`` / ``"propagate"`` (pychop's P3109 rule).
* ``nan`` (NaN input, formats without NaN such as FP4/FP6/INT): ``"error"``, ``"zero"`` (+0),
  ``"max"`` (+max; the NaN's sign bit is ignored).
* ``subnormals``: ``"keep"`` or ``"flush"`` (flush-to-zero on output: a result that rounds to a
  subnormal becomes signed zero, whatever the rounding direction).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lowbit.formats import _kernel as K
from lowbit.formats._lut import code_table, gather, lut_encode, lut_quantize, lut_width
from lowbit.formats.float_format import FloatFormat
from lowbit.formats.int_format import IntFormat
from lowbit.formats.registry import resolve

SUBNORMAL_POLICIES = ("keep", "flush")
_NANK = {None: 0, "ieee": 1, "fn": 2, "fnuz": 3}

ROUNDING_ALIASES = {
    # gfloat RoundMode names (lower case) and pychop P3109 / Chop names
    "tiestoeven": "rne", "nearest_even": "rne", "ties_to_even": "rne",
    "tiestoaway": "rna", "nearest_away": "rna", "ties_to_away": "rna",
    "towardzero": "rtz", "toward_zero": "rtz", "truncate": "rtz",
    "towardpositive": "rup", "toward_positive": "rup", "ceil": "rup",
    "towardnegative": "rdown", "toward_negative": "rdown", "floor": "rdown",
    "toodd": "rto", "to_odd": "rto",
    "ties_to_zero": "rnz", "nearest_zero": "rnz", "rtz_ties": "rnz",
    "ties_to_odd": "rno", "nearest_odd": "rno",
    "stochasticfastest": "stochastic", "stochastic_a": "stochastic", "sr": "stochastic",
    "stochasticfast": "stochastic_fast", "stochastic_b": "stochastic_fast",
    "stochastic_c": "stochastic_rne",
    "stochasticodd": "stochastic_rno",
    "sr-50": "sr_half", "sr50": "sr_half", "stochastic_half": "sr_half",
}
"""Other spellings of :data:`ROUNDING` modes (case-insensitive). ``"stochastic_c"`` is pychop's
name for gfloat's ``Stochastic`` (RNE before the comparison): lowbit's ``"stochastic_rne"``."""


def _choice(value, allowed, argname):
    if value not in allowed:
        raise ValueError(f"{argname} must be one of {list(allowed)}, got {value!r}")
    return allowed.index(value)


def rounding_mode(rounding) -> str:
    """The canonical :data:`ROUNDING` name of ``rounding`` (a mode or one of
    :data:`ROUNDING_ALIASES`); ValueError naming the allowed values otherwise."""
    if isinstance(rounding, str):
        key = rounding.strip().lower()
        key = ROUNDING_ALIASES.get(key, key)
        if key in K.ROUNDING:
            return key
    raise ValueError(f"rounding must be one of {list(K.ROUNDING)} (or an alias: "
                     f"{', '.join(sorted(ROUNDING_ALIASES))}), got {rounding!r}")


@lru_cache(maxsize=512)
def kernel_params(fmt, rounding="rne", overflow="saturate", nan="error", subnormals="keep",
                  sr_bits=32) -> np.ndarray:
    """The int64 parameter vector consumed by :mod:`lowbit.formats._kernel`."""
    P = np.zeros(K.P_LEN, dtype=np.int64)
    P[K.P_ROUND] = K.ROUNDING.index(rounding_mode(rounding))
    P[K.P_OVF] = _choice(overflow, K.OVERFLOW, "overflow")
    P[K.P_NANPOL] = _choice(nan, K.NANPOLICY, "nan")
    P[K.P_FLUSH] = _choice(subnormals, SUBNORMAL_POLICIES, "subnormals")
    if not isinstance(sr_bits, (int, np.integer)) or not 1 <= sr_bits <= 62:
        raise ValueError(f"sr_bits must be an integer in 1..62, got {sr_bits!r}")
    P[K.P_SRBITS] = sr_bits
    if isinstance(fmt, FloatFormat):
        P[K.P_KIND] = 0
        P[K.P_EBITS] = fmt.ebits
        P[K.P_MBITS] = fmt.mbits
        P[K.P_BIAS] = fmt.bias
        P[K.P_SIGNED] = int(fmt.signed)
        P[K.P_SUBN] = int(fmt.subnormals)
        P[K.P_ZERO] = int(fmt.zero)
        P[K.P_NANK] = _NANK[fmt.nan]
        P[K.P_INF] = int(fmt.has_inf)
        P[K.P_EMIN] = fmt.emin
        P[K.P_MAXF] = fmt.max_field
        P[K.P_MAXM] = fmt.max_mant
        P[K.P_NANCODE] = max(fmt.nan_code, 0)
        P[K.P_INFCODE] = max(fmt.inf_code, 0)
        P[K.P_MAXCODE] = fmt.max_code
    elif isinstance(fmt, IntFormat):
        P[K.P_KIND] = 1
        P[K.P_EBITS] = fmt.bits
        P[K.P_SIGNED] = int(fmt.signed)
        P[K.P_ZERO] = 1
        P[K.P_QMIN] = fmt.qmin
        P[K.P_QMAX] = fmt.qmax
        P[K.P_FRAC] = fmt.frac_bits
        P[K.P_MAXCODE] = fmt.qmax
    else:
        raise TypeError(f"element format expected, got {type(fmt).__name__}")
    P.setflags(write=False)
    return P


@lru_cache(maxsize=256)
def value_table(fmt) -> np.ndarray | None:
    """float64 value of every code (<= 16-bit formats), used as a decode lookup table."""
    if fmt.bits > 16:
        return None
    if isinstance(fmt, IntFormat):
        t = fmt.values()
    else:
        codes = np.arange(1 << fmt.bits, dtype=np.uint32)
        t = np.empty(codes.shape[0], dtype=np.float64)
        K.decode_kernel(codes, kernel_params(fmt), t)
    t.setflags(write=False)
    return t


def as_float_bits(x):
    """(flat bit-pattern array, SM, SE, float dtype) for a float16/32/64 array."""
    x = np.asarray(x)
    if x.dtype == np.float16:
        x = x.astype(np.float32)
    if x.dtype == np.float32:
        return np.ascontiguousarray(x).reshape(-1).view(np.uint32), 23, 8, np.float32
    if x.dtype == np.float64:
        return np.ascontiguousarray(x).reshape(-1).view(np.uint64), 52, 11, np.float64
    raise TypeError(f"x must be a float16, float32 or float64 array, got dtype {x.dtype}")


def _random_bits(n, seed, sr_bits):
    if seed is None:
        raise ValueError("stochastic rounding needs seed= (an int or a numpy.random.Generator)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(0, 1 << sr_bits, size=n, dtype=np.uint64)


_EMPTY_RND = np.zeros(0, dtype=np.uint64)
_ZERO_SHIFT = np.zeros(1, dtype=np.int64)


def run_encode(x, fmt, rounding="rne", overflow="saturate", nan="error", subnormals="keep",
               seed=None, sr_bits=32, shift=None, rowlen=None, want_values=False):
    """Core element conversion over a flat view. Returns (codes uint32, values float64|None).

    ``shift`` (int64 per row of ``rowlen`` elements) divides the input by ``2**shift`` exactly
    before rounding (power-of-two block scales).
    """
    u, SM, SE, _ = as_float_bits(x)
    rounding = rounding_mode(rounding)
    P = kernel_params(fmt, rounding, overflow, nan, subnormals, sr_bits)
    n = u.shape[0]
    stochastic = rounding in K.STOCHASTIC_ROUNDING
    rnd = _random_bits(n, seed, sr_bits) if stochastic else _EMPTY_RND
    codes = np.empty(n, dtype=np.uint32)
    vals = None
    if shift is None and not stochastic and lut_width(fmt) is not None and (
            SM == 23 or n > 50_000):
        k, table = code_table(fmt, P.tobytes(), 32 if SM == 23 else 64)
        if want_values:
            vals = np.empty(n, dtype=np.float32 if SM == 23 else np.float64)
            lut_quantize(u, SM, k, table, value_table(fmt).astype(vals.dtype), codes, vals)
        else:
            lut_encode(u, SM, k, table, codes)
        _check_errors(codes, x, fmt, overflow, nan)
        return codes, vals
    if shift is None:
        shift, rowlen = _ZERO_SHIFT, max(n, 1)
    lut = value_table(fmt) if want_values else None
    if want_values and lut is not None:
        vals = np.empty(n, dtype=np.float64)
        K.quantize_kernel(u, SM, SE, shift, rowlen, P, rnd, lut, codes, vals)
    else:
        K.encode_kernel(u, SM, SE, shift, rowlen, P, rnd, codes)
    _check_errors(codes, x, fmt, overflow, nan)
    if want_values and vals is None:
        vals = decode(codes, fmt)
    return codes, vals


def _check_errors(codes, x, fmt, overflow, nan):
    could_fail = overflow == "error" or (nan == "error" and not fmt.has_nan) or (
        isinstance(fmt, FloatFormat) and not fmt.signed)
    if not could_fail:
        return
    bad = codes >= K.ERR_NEG
    if not bad.any():
        return
    i = int(np.argmax(bad))
    xv = np.asarray(x).reshape(-1)[i]
    c = codes[i]
    if c == K.ERR_NAN:
        raise ValueError(f"NaN input at flat index {i} but {fmt.name} has no NaN and nan='error'; "
                         f"pass nan='zero' or nan='max' (allowed: {list(K.NANPOLICY)})")
    if c == K.ERR_NEG:
        raise ValueError(f"negative input {xv!r} at flat index {i} for unsigned format {fmt.name} "
                         f"with overflow='error' (allowed: {list(K.OVERFLOW)})")
    raise ValueError(f"input {xv!r} at flat index {i} overflows {fmt.name} (max {fmt.max!r}) "
                     f"and overflow='error' (allowed: {list(K.OVERFLOW)})")


def _code_dtype(fmt):
    return np.uint8 if fmt.bits <= 8 else (np.uint16 if fmt.bits <= 16 else np.uint32)


def encode(x, fmt, rounding="rne", overflow="saturate", nan="error", subnormals="keep",
           seed=None, sr_bits=32, axis=-1, **block_kw):
    """Codes of ``x`` in ``fmt`` (uint8 / uint16 / uint32 array of ``x``'s shape).

    For a :class:`~lowbit.formats.block_format.BlockFormat` returns a
    :class:`~lowbit.formats.qtensor.QuantizedTensor` (blocks along ``axis``).
    """
    fmt = resolve(fmt)
    rounding = rounding_mode(rounding)
    if fmt.kind == "block":
        from lowbit.formats.block_engine import encode_blocks

        return encode_blocks(x, fmt, axis=axis, rounding=rounding, overflow=overflow, nan=nan,
                             subnormals=subnormals, seed=seed, sr_bits=sr_bits, **block_kw)
    if block_kw:
        raise TypeError(f"unexpected arguments for an element format: {sorted(block_kw)}")
    xa = np.asarray(x)
    codes, _ = run_encode(xa, fmt, rounding, overflow, nan, subnormals, seed, sr_bits)
    return codes.astype(_code_dtype(fmt)).reshape(xa.shape)


def quantize(x, fmt, rounding="rne", overflow="saturate", nan="error", subnormals="keep",
             seed=None, sr_bits=32, axis=-1, **block_kw):
    """Round ``x`` to ``fmt`` and return the represented values (fake quantization).

    Shape is preserved; float32 in gives float32 out, float64 gives float64, float16 gives
    float32. Block formats quantize blocks along ``axis`` (see ``encode``).
    """
    fmt = resolve(fmt)
    rounding = rounding_mode(rounding)
    xa = np.asarray(x)
    if xa.dtype.kind in "iub":
        raise TypeError(f"x must be a float16, float32 or float64 array, got dtype {xa.dtype}")
    out_dtype = np.float64 if xa.dtype == np.float64 else np.float32
    if fmt.kind == "block":
        from lowbit.formats.block_engine import quantize_blocks

        return quantize_blocks(xa, fmt, axis=axis, rounding=rounding, overflow=overflow, nan=nan,
                               subnormals=subnormals, seed=seed, sr_bits=sr_bits,
                               **block_kw).astype(out_dtype, copy=False)
    if block_kw:
        raise TypeError(f"unexpected arguments for an element format: {sorted(block_kw)}")
    _, vals = run_encode(xa, fmt, rounding, overflow, nan, subnormals, seed, sr_bits,
                         want_values=True)
    return vals.astype(out_dtype, copy=False).reshape(xa.shape)


def decode(codes, fmt=None):
    """float64 values of ``codes`` (NaN codes -> NaN). Accepts a QuantizedTensor too."""
    from lowbit.formats.qtensor import QuantizedTensor

    if isinstance(codes, QuantizedTensor):
        return codes.dequantize()
    if fmt is None:
        raise TypeError("decode(codes, fmt) needs fmt (a format or its name) unless codes is a "
                        "QuantizedTensor")
    fmt = resolve(fmt)
    if fmt.kind == "block":
        raise TypeError("decode(codes, block_format) needs a QuantizedTensor; "
                        "use encode(x, fmt).dequantize()")
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or c.max() >= (1 << fmt.bits)):
        raise ValueError(f"codes must be in 0..{(1 << fmt.bits) - 1} for {fmt.name}")
    lut = value_table(fmt)
    if lut is not None:
        if c.size < 4096:
            return lut[c.astype(np.intp)]
        out = np.empty(c.size, np.float64)
        gather(np.ascontiguousarray(c).reshape(-1), lut, out)
        return out.reshape(c.shape)
    flat = np.ascontiguousarray(c.reshape(-1))
    out = np.empty(flat.shape[0], dtype=np.float64)
    if isinstance(fmt, IntFormat):
        out[:] = np.ldexp(fmt.code_to_int(flat).astype(np.float64), -fmt.frac_bits)
    else:
        K.decode_kernel(flat, kernel_params(fmt), out)
    return out.reshape(c.shape)
