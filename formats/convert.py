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
* stochastic modes, seeded by ``seed`` (a non-negative int or a ``numpy.random.Generator``):
  element ``i`` (flat C order for element formats; for block formats position ``r * k + c`` in
  the row layout of :class:`~lowbit.formats.layout.BlockLayout`, padding included) uses the
  random integer ``r_i`` in ``[0, 2**sr_bits)`` of :func:`lowbit.formats._kernel.random_bits`
  (counter-based: SplitMix64 of ``key + (i + 1) * 0x9E3779B97F4A7C15``, top ``sr_bits`` bits,
  ``key`` drawn once per call from ``seed``), so the result does not depend on chunking or
  threads (it changed from the earlier ``rng.integers`` stream); ``f`` is the discarded
  fraction of an ulp (IEEE P3109 interim report v3.1 definitions as implemented by gfloat
  ``RoundMode``):

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

import os

import numpy as np

from lowbit.formats import _kernel as K
from lowbit.formats import chunking as C
from lowbit.formats._arith import arith_encode, arith_params
from lowbit.formats._codec import (
    ROUNDING_ALIASES,
    decode_codes,
    kernel_params,
    rounding_mode,
    value_by_index,
    value_table,
)
from lowbit.formats._lut import code_table, compact_table, lut_encode, lut_values, lut_width
from lowbit.formats.buffers import empty
from lowbit.formats.registry import resolve

__all__ = ["ROUNDING_ALIASES", "rounding_mode", "rounding_table", "run_encode", "encode_element",
           "quantize_element", "convert_elements", "check_out", "check_errors", "code_dtype",
           "check_renamed", "SLOW_FORMATS_ENV", "slow_formats"]

RENAMED_KEYWORDS = {"nan": "nan_input", "subnormals": "subnormal_output"}
"""Old conversion keywords and their new names (``nan`` and ``subnormals`` also name format
fields, ``FloatFormat.nan`` / ``FloatFormat.subnormals``, with another meaning)."""

TABLE_MIN_FLOAT64 = 50_000
"""float64 inputs use the (larger, 2**(k+13)-entry) table from this many elements on."""

SLOW_FORMATS_ENV = "LOWBIT_SLOW_FORMATS"
"""Environment variable: set (to anything but ``""`` / ``"0"``) to make every conversion take
the exact kernel (:mod:`lowbit.formats._kernel`) instead of its fast paths (the branch-free
arithmetic of :mod:`lowbit.formats._arith` / ``_arith_block`` and the lookup tables of
:mod:`lowbit.formats._lut`), to compare them."""


def slow_formats() -> bool:
    """True when :data:`SLOW_FORMATS_ENV` asks for the exact kernel only."""
    return os.environ.get(SLOW_FORMATS_ENV, "") not in ("", "0")


def check_renamed(kwargs: dict) -> None:
    """TypeError for a keyword spelled the old way (see :data:`RENAMED_KEYWORDS`)."""
    for old, new in RENAMED_KEYWORDS.items():
        if old in kwargs:
            raise TypeError(f"{old}= is now {new}= (the {old!r} keyword of a conversion was "
                            f"ambiguous with FloatFormat.{old}); pass {new}={kwargs[old]!r}")


def _bits(x: np.ndarray):
    """(bit-pattern view, SM, SE) of a native 1-D float32 / float64 array."""
    if x.dtype == np.float32:
        return x.view(np.uint32), 23, 8
    return x.view(np.uint64), 52, 11


_ZERO_SHIFT = np.zeros(1, dtype=np.int64)


def run_encode(x, fmt, rounding="rne", overflow="saturate", nan_input="error",
               subnormal_output="keep", seed=None, sr_bits=32, shift=None, rowlen=None,
               want_values=False, key=None, offset=0, check=True):
    """Exact conversion of one native 1-D float32 / float64 chunk ``x``: (codes int64, negative
    for an error sentinel of :mod:`lowbit.formats._kernel`; values float64 or None). ``shift`` (int64 per row of ``rowlen`` elements) divides the input by
    ``2**shift`` exactly before rounding (power-of-two block scales); under a stochastic
    rounding element ``i`` draws random index ``offset + i`` with ``key`` (default: drawn from
    ``seed``). ``check=False`` leaves error sentinels in the codes."""
    u, SM, SE = _bits(x)
    rounding = rounding_mode(rounding)
    P = kernel_params(fmt, rounding, overflow, nan_input, subnormal_output, sr_bits)
    if key is None:
        key = C.stochastic_key(seed) if rounding in K.STOCHASTIC_ROUNDING else np.uint64(0)
    n = u.shape[0]
    if shift is None:
        shift, rowlen = _ZERO_SHIFT, max(n, 1)
    codes = np.empty(n, dtype=np.int64)
    vals = None
    lut = value_table(fmt) if want_values else None
    if want_values and lut is not None:
        vals = np.empty(n, dtype=np.float64)
        K.quantize_kernel.serial(u, SM, SE, shift, rowlen, P, np.uint64(key), offset, lut, codes,
                                 vals)
    else:
        K.encode_kernel.serial(u, SM, SE, shift, rowlen, P, np.uint64(key), offset, codes)
    if check:
        check_errors(codes, x, fmt, overflow, nan_input, offset=offset)
    if want_values and vals is None:
        ok = codes >= 0
        vals = np.full(n, np.nan)
        vals[ok] = decode_codes(codes[ok], fmt)
    return codes, vals


def check_errors(codes, x, fmt, overflow, nan_input, offset=0, where=None):
    """Raise the ValueError the first error sentinel in ``codes`` stands for. ``offset`` is the
    flat index of ``codes[0]``; ``where(i)`` (optional) describes element ``i`` (block
    formats: its block, scale and scaled value) instead of "input v at flat index i"."""
    could_fail = overflow == "error" or (nan_input == "error" and not fmt.has_nan) or (
        fmt.kind == "float" and not fmt.signed)
    if not could_fail:
        return
    codes = np.asarray(codes)
    if codes.dtype == np.uint32:  # a lookup table's codes: sentinels wrapped to uint32
        bad = codes >= K.TABLE_ERR_MIN
    else:
        bad = codes < 0
    if not bad.any():
        return
    i = int(np.argmax(bad))
    c = int(codes[i]) - (1 << 32 if codes.dtype == np.uint32 else 0)
    if where is not None:
        at = where(i)
    elif c == K.ERR_NAN:
        at = f"input at flat index {offset + i}"
    else:
        at = f"input {float(np.asarray(x).reshape(-1)[i])!r} at flat index {offset + i}"
    if c == K.ERR_NAN:
        raise ValueError(f"NaN {at}: {fmt.name} has no NaN and nan_input='error'; pass "
                         f"nan_input='zero' or nan_input='max' (allowed: {list(K.NAN_INPUT)})")
    allowed = [o for o in K.OVERFLOW if fmt.kind == "int" or o not in K.INT_ONLY_OVERFLOW]
    if c == K.ERR_NEG:
        raise ValueError(f"negative {at} for unsigned format {fmt.name} with overflow='error' "
                         f"(allowed: {allowed})")
    raise ValueError(f"{at} overflows {fmt.name} (max {fmt.max!r}) and overflow='error' "
                     f"(allowed: {allowed})")


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


def value_dtype(dtype) -> np.dtype:
    """dtype of ``quantize``'s result for an input dtype: float64 for float64, else float32."""
    return np.dtype(np.float64) if C.work_dtype(dtype) == np.float64 else np.dtype(np.float32)


def check_out(out, x: np.ndarray) -> np.ndarray:
    """``out`` if it can receive ``quantize(x, ...)``: a writeable C-contiguous numpy array of
    ``x``'s shape and of :func:`value_dtype` (float32 for float16 / float32 ``x``, float64 for
    float64); a TypeError / ValueError naming ``out`` otherwise."""
    want = value_dtype(x.dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array of dtype {want} and shape {x.shape}, got "
                        f"{type(out).__name__}")
    if out.dtype != want or out.shape != x.shape:
        raise ValueError(f"out must have dtype {want} and shape {x.shape} (the result of "
                         f"quantize for a {x.dtype} x), got dtype {out.dtype} and shape "
                         f"{out.shape}")
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be a writeable C-contiguous array (a copy is what quantize "
                         "returns without out)")
    return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` are the same elements in the same order (in-place conversion)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides)


def convert_elements(x, fmt, want_codes=True, want_values=False, rounding="rne",
                     overflow="saturate", nan_input="error", subnormal_output="keep", seed=None,
                     sr_bits=32, out=None):
    """Codes (``code_dtype(fmt)``) and / or values (:func:`value_dtype`) of a float array in an
    element format, ``x``'s shape, computed in chunks of :data:`chunking.CHUNK_ELEMS`
    (native contiguous input on the branch-free path, which needs no chunk buffer: larger
    pieces, :func:`chunking.direct_piece`). ``out``
    (checked by :func:`check_out`): the values are written into it. It may be ``x`` itself:
    on the branch-free path each 2048-element stage is then read from a stage buffer
    (:func:`lowbit.formats._arith.arith_encode` ``in_place``), on the others each chunk is
    computed into a chunk-sized buffer and copied back, so every input element is read - by
    the fast path, its fall-back and the error re-check - before it is overwritten, and chunks
    (disjoint, the same ranges in and out) run concurrently as before.
    Any other overlap with ``x`` is computed into a fresh array, then copied.

    Fast paths, each proven equal to the exact kernel: float32 input to a float format under
    round-to-nearest-even, the branch-free integer rounding of :mod:`lowbit.formats._arith`;
    otherwise (deterministic rounding, formats of at most 8 bits, float32 input, or float64
    from :data:`TABLE_MIN_FLOAT64` elements) one gather per element from the rounding table
    (codes) or from the values of its entries (values), :mod:`lowbit.formats._lut`. A chunk in
    which an error may hide is re-encoded exactly to raise the error. Otherwise the exact
    kernel per chunk (always, when :func:`slow_formats`)."""
    xa = C.as_float_array(x)
    rounding = rounding_mode(rounding)
    P = kernel_params(fmt, rounding, overflow, nan_input, subnormal_output, sr_bits)
    stochastic = rounding in K.STOCHASTIC_ROUNDING
    C.check_seed(seed)
    key = C.stochastic_key(seed) if stochastic else np.uint64(0)
    codes = empty(xa.shape, code_dtype(fmt)) if want_codes else None
    vals = (empty(xa.shape, value_dtype(xa.dtype)) if out is None else check_out(out, xa)) \
        if want_values else None
    alias = vals is not None and out is not None and np.may_share_memory(vals, xa)
    if alias and not _same_memory(vals, xa):  # a shifted / reshaped overlap: no chunk order
        res = convert_elements(xa, fmt, want_codes, want_values, rounding, overflow, nan_input,
                               subnormal_output, seed, sr_bits)  # is safe; compute, then copy
        np.copyto(vals, res[1])
        return res[0], vals
    work = C.work_dtype(xa.dtype)
    src_bits = 32 if work == np.float32 else 64
    table = None
    slow = slow_formats()
    qc = arith_params(fmt, P.tobytes(), False) if want_codes and src_bits == 32 else None
    qv = arith_params(fmt, P.tobytes(), True) if want_values and src_bits == 32 else None
    arith = not slow and (want_codes or want_values) and (qc is not None or not want_codes) and (
        qv is not None or not want_values)
    if not arith and not slow and not stochastic and lut_width(
            fmt, src_bits, overflow) is not None and (
            src_bits == 32 or xa.size >= TABLE_MIN_FLOAT64):
        k, table = compact_table(fmt, P.tobytes(), src_bits)
        ncodes = 1 << fmt.bits
        SM = 23 if src_bits == 32 else 52
        sh = np.uint32(SM - k) if src_bits == 32 else np.uint64(SM - k)
        mask = (np.uint32 if src_bits == 32 else np.uint64)((1 << (SM - k)) - 1)
        vtab = value_by_index(fmt, P.tobytes(), src_bits, vals.dtype.str) if want_values else None
    could_fail = overflow == "error" or (nan_input == "error" and not fmt.has_nan) or (
        fmt.kind == "float" and not fmt.signed)
    cflat = codes.reshape(-1) if want_codes else None
    vflat = vals.reshape(-1) if want_values else None
    pol = dict(rounding=rounding, overflow=overflow, nan_input=nan_input,
               subnormal_output=subnormal_output, sr_bits=sr_bits)

    def piece(item):
        start, chunk = item
        n = chunk.shape[0]
        dst = vflat[start:start + n] if want_values else None
        staged = alias and np.may_share_memory(dst, chunk)
        if staged and arith and not want_codes and _same_memory(dst, chunk):
            convert_piece(chunk, start, n, dst, in_place=True)  # staged stage by stage
            return
        if staged:
            dst = np.empty_like(dst)  # written back once the chunk has been read
        convert_piece(chunk, start, n, dst)
        if staged:
            vflat[start:start + n] = dst

    def convert_piece(chunk, start, n, dst, in_place=False):
        if arith:
            u = chunk.view(np.uint32)
            suspect = 0
            if want_codes:
                suspect += arith_encode(u, qc, cflat[start:start + n])
            if want_values:
                suspect += arith_encode(u, qv, dst.view(np.uint32), in_place)
            if suspect and could_fail:
                check_errors(run_encode(chunk, fmt, **pol, key=key, offset=start,
                                        check=False)[0], chunk, fmt, overflow, nan_input,
                             offset=start)
            return
        if table is not None:
            u = _bits(chunk)[0]
            suspect = 0
            if want_codes:
                suspect += lut_encode.serial(u, sh, mask, table, ncodes, cflat[start:start + n])
            if want_values:
                suspect += lut_values.serial(u, sh, mask, vtab, dst)
            if suspect and could_fail:  # find and raise the error, if there is one
                c32 = np.empty(n, np.uint32)
                lut_encode.serial(u, sh, mask, code_table(fmt, P.tobytes(), src_bits)[1],
                                  ncodes, c32)
                check_errors(c32, chunk, fmt, overflow, nan_input, offset=start)
            return
        c64, v64 = run_encode(chunk, fmt, **pol, want_values=want_values, key=key, offset=start)
        if want_codes:
            cflat[start:start + n] = c64
        if want_values:
            dst[:] = v64

    direct = arith and not alias and xa.dtype == work and xa.flags.c_contiguous
    C.run_pieces(piece, C.c_order_chunks(xa, C.direct_piece(xa.size) if direct else None))
    return codes, vals


def encode_element(x, fmt, **policies) -> np.ndarray:
    """Codes of a float array in an element format (``code_dtype(fmt)``, ``x``'s shape)."""
    return convert_elements(x, fmt, want_codes=True, **policies)[0]


def quantize_element(x, fmt, out=None, **policies) -> np.ndarray:
    """Values of a float array rounded to an element format (:func:`value_dtype`), written into
    ``out`` when given (see :func:`convert_elements`)."""
    return convert_elements(x, fmt, want_codes=False, want_values=True, out=out, **policies)[1]
