"""Element conversion: the exact rounding of float16/32/64 arrays to element-format codes.

The public functions :func:`lowbit.formats.quantize` / ``encode`` / ``decode`` (module
:mod:`lowbit.formats.api`) call :func:`run_encode` here for element formats and, through the
block engine, for the elements of block formats. Their rounding modes and policies:

Rounding (one rounding from the exact float16/32/64 input value):

* ``"rne"`` nearest, ties to even code (IEEE 754 roundTiesToEven; OFP8 rule 1)
* ``"rna"`` nearest, ties away from zero
* ``"rtz"`` toward zero, ``"rup"`` toward +Inf, ``"rdown"`` toward -Inf
* ``"rto"`` round to odd (truncate, then set the LSB if inexact)
* ``"rnz"`` nearest, ties toward zero; ``"rno"`` nearest, ties to odd code; ``"rnp"`` /
  ``"rnm"`` nearest, ties toward +Inf / -Inf (HLS ``AP_RND`` / ``AP_RND_MIN_INF``)
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
  ``"error"`` (raise); integer / fixed-point formats only: ``"wrap"`` (two's-complement wrap
  of the rounded integer, HLS ``AP_WRAP``), ``"sat_zero"`` (0, ``AP_SAT_ZERO``), ``"sat_sym"``
  (saturate to ``[-max, max]``, the most negative code is never produced, ``AP_SAT_SYM``).
  Default policies: ``rounding=None`` / ``overflow=None`` take the format's own
  (:func:`lowbit.formats._codec.default_policies`; an HLS ``ap_fixed`` format carries its
  modes), else ``"rne"`` / ``"saturate"``. A negative input to an unsigned format with a zero gives +0 when its
  magnitude rounds to 0 or the rounding is ``rtz`` / ``rup``, else NaN under ``"nonsat"``
  (where the format has NaN), +0 under ``"saturate"`` / ``"propagate"`` (pychop's P3109 rule).
* ``nan_input`` (what a NaN input becomes in a format without NaN such as FP4/FP6/INT):
  ``"error"``, ``"zero"`` (+0), ``"max"`` (+max; the NaN's sign bit is ignored). Not to be confused
  with ``FloatFormat.nan``, the format's NaN encoding scheme.
* ``subnormal_output``: ``"keep"`` or ``"flush"`` (flush-to-zero on output: a result that rounds
  to a subnormal becomes signed zero, whatever the rounding direction). Not to be confused with
  ``FloatFormat.subnormals``, whether the format has subnormal codes at all.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats import _kernel as K
from lowbit.formats._codec import ROUNDING_ALIASES, decode_codes, kernel_params, rounding_mode
from lowbit.formats._codec import value_table as value_table
from lowbit.formats._lut import code_table, lut_encode, lut_quantize, lut_width
from lowbit.formats.registry import resolve

__all__ = ["ROUNDING_ALIASES", "rounding_mode", "rounding_table", "run_encode", "encode_element",
           "quantize_element", "as_float_bits", "check_errors", "code_dtype", "check_renamed"]

RENAMED_KEYWORDS = {"nan": "nan_input", "subnormals": "subnormal_output"}
"""Old conversion keywords and their new names (``nan`` and ``subnormals`` also name format
fields, ``FloatFormat.nan`` / ``FloatFormat.subnormals``, with another meaning)."""


def check_renamed(kwargs: dict) -> None:
    """TypeError for a keyword spelled the old way (see :data:`RENAMED_KEYWORDS`)."""
    for old, new in RENAMED_KEYWORDS.items():
        if old in kwargs:
            raise TypeError(f"{old}= is now {new}= (the {old!r} keyword of a conversion was "
                            f"ambiguous with FloatFormat.{old}); pass {new}={kwargs[old]!r}")


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


def run_encode(x, fmt, rounding="rne", overflow="saturate", nan_input="error",
               subnormal_output="keep", seed=None, sr_bits=32, shift=None, rowlen=None,
               want_values=False):
    """Core element conversion over a flat view. Returns (codes uint32, values float64|None).

    ``shift`` (int64 per row of ``rowlen`` elements) divides the input by ``2**shift`` exactly
    before rounding (power-of-two block scales).
    """
    u, SM, SE, _ = as_float_bits(x)
    rounding = rounding_mode(rounding)
    P = kernel_params(fmt, rounding, overflow, nan_input, subnormal_output, sr_bits)
    n = u.shape[0]
    stochastic = rounding in K.STOCHASTIC_ROUNDING
    rnd = _random_bits(n, seed, sr_bits) if stochastic else _EMPTY_RND
    codes = np.empty(n, dtype=np.uint32)
    vals = None
    src_bits = 32 if SM == 23 else 64
    if shift is None and not stochastic and lut_width(fmt, src_bits, overflow) is not None and (
            SM == 23 or n > 50_000):
        k, table = code_table(fmt, P.tobytes(), 32 if SM == 23 else 64)
        if want_values:
            vals = np.empty(n, dtype=np.float32 if SM == 23 else np.float64)
            lut_quantize(u, SM, k, table, value_table(fmt).astype(vals.dtype), codes, vals)
        else:
            lut_encode(u, SM, k, table, codes)
        check_errors(codes, x, fmt, overflow, nan_input)
        return codes, vals
    if shift is None:
        shift, rowlen = _ZERO_SHIFT, max(n, 1)
    lut = value_table(fmt) if want_values else None
    if want_values and lut is not None:
        vals = np.empty(n, dtype=np.float64)
        K.quantize_kernel(u, SM, SE, shift, rowlen, P, rnd, lut, codes, vals)
    else:
        K.encode_kernel(u, SM, SE, shift, rowlen, P, rnd, codes)
    check_errors(codes, x, fmt, overflow, nan_input)
    if want_values and vals is None:
        vals = decode_codes(codes, fmt)
    return codes, vals


def check_errors(codes, x, fmt, overflow, nan_input):
    """Raise the ValueError an error sentinel code in ``codes`` stands for (the first one)."""
    could_fail = overflow == "error" or (nan_input == "error" and not fmt.has_nan) or (
        fmt.kind == "float" and not fmt.signed)
    if not could_fail:
        return
    bad = codes >= K.ERR_NEG
    if not bad.any():
        return
    i = int(np.argmax(bad))
    xv = np.asarray(x).reshape(-1)[i]
    c = codes[i]
    if c == K.ERR_NAN:
        raise ValueError(f"NaN input at flat index {i} but {fmt.name} has no NaN and "
                         f"nan_input='error'; pass nan_input='zero' or nan_input='max' "
                         f"(allowed: {list(K.NAN_INPUT)})")
    if c == K.ERR_NEG:
        raise ValueError(f"negative input {xv!r} at flat index {i} for unsigned format {fmt.name} "
                         f"with overflow='error' (allowed: {list(K.OVERFLOW)})")
    raise ValueError(f"input {xv!r} at flat index {i} overflows {fmt.name} (max {fmt.max!r}) "
                     f"and overflow='error' (allowed: {list(K.OVERFLOW)})")


def rounding_table(fmt, rounding="rne", overflow="saturate", nan_input="error",
                   subnormal_output="keep", src_dtype=np.float32) -> tuple[int, np.ndarray]:
    """The lookup table of the conversion fast path: ``(k, table)`` with ``table[i]`` the code
    (uint32; ``>= 0xFFFFFFFD`` where the policy raises) of every source value ``x`` of dtype
    ``src_dtype`` (float32 or float64, bit pattern ``u``, ``SM`` = 23 or 52 mantissa bits) with
    ``i = ((u >> (SM - k)) << 1) | (u & (2**(SM - k) - 1) != 0)``: sign, exponent, top ``k``
    mantissa bits and a sticky bit. Bit-identical to the exact rounding for every input (proof
    in :mod:`lowbit.formats._lut`). Element formats of at most 8 bits, deterministic rounding
    modes only (ValueError otherwise). Read-only; cached per format and policy."""
    fmt = resolve(fmt, kind="element")
    src_bits = {np.dtype(np.float32): 32, np.dtype(np.float64): 64}.get(np.dtype(src_dtype))
    if src_bits is None:
        raise ValueError(f"src_dtype must be float32 or float64, got {src_dtype!r}")
    rounding = rounding_mode(rounding)
    if rounding in K.STOCHASTIC_ROUNDING:
        raise ValueError(f"rounding={rounding!r} draws random bits: no lookup table")
    P = kernel_params(fmt, rounding, overflow, nan_input, subnormal_output)
    if lut_width(fmt, src_bits, overflow) is None:
        raise ValueError(f"{fmt.name} with overflow={overflow!r} has no lookup table (element "
                         f"formats of at most 8 bits; not overflow='wrap')")
    return code_table(fmt, P.tobytes(), src_bits)


def code_dtype(fmt):
    """Smallest unsigned dtype holding the codes of an element format."""
    return np.uint8 if fmt.bits <= 8 else (np.uint16 if fmt.bits <= 16 else np.uint32)


def encode_element(x, fmt, **policies) -> np.ndarray:
    """Codes of a float array in an element format (``code_dtype(fmt)``, ``x``'s shape)."""
    xa = np.asarray(x)
    codes, _ = run_encode(xa, fmt, **policies)
    return codes.astype(code_dtype(fmt)).reshape(xa.shape)


def quantize_element(x, fmt, **policies) -> np.ndarray:
    """Values of a float array rounded to an element format (float64, or float32 from the
    float32 table path), ``x``'s shape."""
    xa = np.asarray(x)
    _, vals = run_encode(xa, fmt, want_values=True, **policies)
    return vals.reshape(xa.shape)
