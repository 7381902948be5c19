"""Element formats as seen by the rounding kernel: the parameter vector and code -> value decoding.

:func:`kernel_params` turns an element format (:class:`~lowbit.formats.float_format.FloatFormat` or
:class:`~lowbit.formats.int_format.IntFormat`, told apart by ``fmt.kind``) and the conversion
policies into the int64 vector ``P`` read by :mod:`lowbit.formats._kernel`; :func:`decode_codes`
maps codes to their float64 values (a lookup table for formats of at most 16 bits, the decode
kernel above). Nothing here imports the format classes, so the descriptors can use it.
"""

from __future__ import annotations

import operator
from functools import lru_cache

import numpy as np

from lowbit.formats import _kernel as K
from lowbit.formats import chunking as C
from lowbit.formats._lut import code_table, gather
from lowbit.formats.buffers import empty

ELEMENT_KINDS = ("float", "int")
GATHER_MIN = 4096
"""Below this many codes ``decode_codes`` indexes the table with numpy (no kernel launch)."""



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
    "ties_up": "rnp", "ties_to_positive": "rnp", "round_half_up": "rnp",
    "ties_down": "rnm", "ties_to_negative": "rnm", "round_half_down": "rnm",
    # Vitis HLS ap_fixed quantization modes (lowbit.formats.int_format.HLS_QUANTIZATION)
    "ap_trn": "rdown", "ap_trn_zero": "rtz", "ap_rnd": "rnp", "ap_rnd_zero": "rnz",
    "ap_rnd_min_inf": "rnm", "ap_rnd_inf": "rna", "ap_rnd_conv": "rne",
}
"""Other spellings of :data:`ROUNDING` modes (case-insensitive). ``"stochastic_c"`` is pychop's
name for gfloat's ``Stochastic`` (RNE before the comparison): lowbit's ``"stochastic_rne"``."""


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


OVERFLOW_ALIASES = {"ap_sat": "saturate", "ap_wrap": "wrap", "ap_sat_zero": "sat_zero",
                    "ap_sat_sym": "sat_sym", "satfinite": "saturate", "ovfinf": "nonsat",
                    "satpropagate": "propagate"}
"""Other spellings of :data:`OVERFLOW` policies (HLS ``ap_o_mode``, P3109 saturation modes)."""


def default_policies(fmt, rounding=None, overflow=None) -> tuple[str, str]:
    """``(rounding, overflow)`` canonical, with ``None`` replaced by the (element) format's own
    default policy (an ``IntFormat`` built from an HLS ``ap_fixed`` type carries one) or by
    ``"rne"`` / ``"saturate"``."""
    el = fmt.element if fmt.kind == "block" else fmt
    own_rounding, own_overflow = (el.rounding, el.overflow) if el.kind == "int" else (None, None)
    if rounding is None:
        rounding = own_rounding or "rne"
    if overflow is None:
        overflow = own_overflow or "saturate"
    if isinstance(overflow, str):
        overflow = OVERFLOW_ALIASES.get(overflow.strip().lower(), overflow)
    return rounding_mode(rounding), overflow


def policy_index(value, allowed, argname: str) -> int:
    """Index of ``value`` in ``allowed`` (a tuple of names); ValueError naming ``argname``, the
    allowed values and the value given otherwise (also for non-strings such as ``["rne"]``)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{argname} must be one of {list(allowed)}, got {value!r}")
    return allowed.index(value)


def check_sr_bits(sr_bits) -> int:
    if (isinstance(sr_bits, (bool, np.bool_)) or not isinstance(sr_bits, (int, np.integer))
            or not 1 <= sr_bits <= 62):
        raise ValueError(f"sr_bits must be an integer in 1..62, got {sr_bits!r}")
    return int(sr_bits)


def kernel_params(fmt, rounding="rne", overflow="saturate", nan_input="error",
                  subnormal_output="keep", sr_bits=32) -> np.ndarray:
    """The read-only int64 parameter vector for ``fmt`` under the given policies (see
    :mod:`lowbit.formats.convert` for their meaning); every name is validated here."""
    if fmt.kind not in ELEMENT_KINDS:
        raise TypeError(f"element format (FloatFormat or IntFormat) expected, got {fmt!r}")
    if overflow in K.INT_ONLY_OVERFLOW and fmt.kind != "int":
        raise ValueError(f"overflow={overflow!r} applies to integer / fixed-point formats "
                         f"only; {fmt.name} is a float format (use one of "
                         f"{[o for o in K.OVERFLOW if o not in K.INT_ONLY_OVERFLOW]})")
    if overflow == "wrap" and fmt.kind == "int" and fmt.narrow:
        raise ValueError(f"overflow='wrap' can produce the unused code of the narrow format "
                         f"{fmt.name}; use overflow='sat_sym' with the full-range format")
    return _params(fmt, K.ROUNDING.index(rounding_mode(rounding)),
                   policy_index(overflow, K.OVERFLOW, "overflow"),
                   policy_index(nan_input, K.NAN_INPUT, "nan_input"),
                   policy_index(subnormal_output, K.SUBNORMAL_OUTPUT, "subnormal_output"),
                   check_sr_bits(sr_bits))


@lru_cache(maxsize=512)
def _params(fmt, rounding: int, overflow: int, nan_input: int, flush: int,
            sr_bits: int) -> np.ndarray:
    P = np.zeros(K.P_LEN, dtype=np.int64)
    P[K.P_ROUND] = rounding
    P[K.P_OVF] = overflow
    P[K.P_NANPOL] = nan_input
    P[K.P_FLUSH] = flush
    P[K.P_SRBITS] = sr_bits
    if fmt.kind == "float":
        P[K.P_KIND] = K.KIND_FLOAT
        P[K.P_EBITS] = fmt.ebits
        P[K.P_MBITS] = fmt.mbits
        P[K.P_BIAS] = fmt.bias
        P[K.P_SIGNED] = int(fmt.signed)
        P[K.P_SUBN] = int(fmt.subnormals)
        P[K.P_ZERO] = int(fmt.zero)
        P[K.P_NANK] = K.NANK_OF_SCHEME[fmt.nan]
        P[K.P_INF] = int(fmt.has_inf)
        P[K.P_EMIN] = fmt.emin
        P[K.P_MAXF] = fmt.max_field
        P[K.P_MAXM] = fmt.max_mant
        P[K.P_NANCODE] = max(fmt.nan_code, 0)
        P[K.P_INFCODE] = max(fmt.inf_code, 0)
        P[K.P_MAXCODE] = fmt.max_code
    else:
        P[K.P_KIND] = K.KIND_INT
        P[K.P_EBITS] = fmt.bits  # int formats keep their width in the exponent-width slot
        P[K.P_SIGNED] = int(fmt.signed)
        P[K.P_ZERO] = 1
        P[K.P_QMIN] = fmt.qmin
        P[K.P_QMAX] = fmt.qmax
        P[K.P_FRAC] = fmt.frac_bits
        P[K.P_MAXCODE] = fmt.qmax
    P.setflags(write=False)
    return P


def _int_values(codes, fmt) -> np.ndarray:
    """float64 ``q * 2**-frac_bits`` of two's-complement codes (NaN for a narrow format's
    unused most negative code)."""
    c = np.asarray(codes).astype(np.int64)
    if fmt.signed:
        c = np.where(c >= (1 << (fmt.bits - 1)), c - (1 << fmt.bits), c)
    v = np.ldexp(c.astype(np.float64), -fmt.frac_bits)
    if fmt.narrow:
        v[c == fmt.qmin - 1] = np.nan
    return v


@lru_cache(maxsize=256)
def value_table(fmt) -> np.ndarray | None:
    """float64 value of every code of an element format of at most 16 bits (read-only), used
    as the decode lookup table; ``None`` for wider formats."""
    if fmt.bits > 16:
        return None
    codes = np.arange(1 << fmt.bits, dtype=np.uint32)
    if fmt.kind == "int":
        t = _int_values(codes, fmt)
    else:
        t = np.empty(codes.shape[0], dtype=np.float64)
        K.decode_kernel(codes, kernel_params(fmt), t)
    t.setflags(write=False)
    return t


@lru_cache(maxsize=128)
def value_by_index(fmt, P_bytes: bytes, src_bits: int, dtype: str) -> np.ndarray:
    """The value (``dtype``) of every index of the rounding table for parameter vector P:
    ``value_table(fmt)[code_table[i]]``, NaN where the table holds an error sentinel (one gather
    instead of two on the quantize fast path)."""
    _, codes = code_table(fmt, P_bytes, src_bits)
    vals = value_table(fmt)
    ok = codes < vals.shape[0]
    out = np.where(ok, vals[np.where(ok, codes, 0)], np.nan).astype(dtype)
    out.setflags(write=False)
    return out


def check_codes(codes, fmt, argname: str = "codes") -> np.ndarray:
    """``codes`` as an integer array whose values are codes of ``fmt`` (TypeError for a
    non-integer dtype, ValueError for a value outside ``0 .. 2**bits - 1``)."""
    c = np.asarray(codes)
    if c.dtype.kind not in "iu":
        raise TypeError(f"{argname} must be an integer array, got dtype {c.dtype}")
    unsigned = c.dtype.kind == "u"
    if unsigned and np.iinfo(c.dtype).max < (1 << fmt.bits):
        return c  # every value of the dtype is a code
    if c.size and ((not unsigned and int(c.min()) < 0) or int(c.max()) >= (1 << fmt.bits)):
        raise ValueError(f"{argname} must be in 0..{(1 << fmt.bits) - 1} for {fmt.name}, "
                         f"got values in {int(c.min())}..{int(c.max())}")
    return c


VALUES_MAX_BITS = 20
"""Widest format whose ``values()`` (one entry per code) may be enumerated."""


def all_values(fmt) -> np.ndarray:
    """Value of every code of ``fmt`` in code order (float64; NaN where a code is NaN or an
    unused integer code): ``FloatFormat.values`` / ``IntFormat.values``."""
    if fmt.bits > VALUES_MAX_BITS:
        raise ValueError(f"values() enumerates 2**bits codes; {fmt.name} has {fmt.bits} bits "
                         f"(at most {VALUES_MAX_BITS})")
    return decode_codes(np.arange(1 << fmt.bits, dtype=np.uint32), fmt)


def one_code(code, fmt) -> int:
    """``code`` as a Python int in ``0 .. 2**bits - 1`` (TypeError for a non-integer, ValueError
    outside the range)."""
    try:
        c = operator.index(code)
    except TypeError:
        raise TypeError(f"code must be an integer, got {type(code).__name__} {code!r}") from None
    if not 0 <= c < (1 << fmt.bits):
        raise ValueError(f"code must be in 0..{(1 << fmt.bits) - 1} for {fmt.name}, got {c}")
    return c


DECODE_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


@lru_cache(maxsize=256)
def _typed_table(fmt, dtype: str) -> np.ndarray | None:
    t = value_table(fmt)
    if t is None:
        return None
    t = t.astype(dtype)
    t.setflags(write=False)
    return t


def decode_codes(codes, fmt, dtype=np.float64) -> np.ndarray:
    """Values of the element codes ``codes`` (any shape) in ``fmt`` (NaN codes -> NaN), as
    float64 (default) or float32 (each value rounded once). Memory: the result (formats of at
    most 16 bits gather from a value table; wider ones decode in pieces of ``CHUNK_ELEMS``)."""
    dtype = np.dtype(dtype)
    if dtype not in DECODE_DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype}")
    c = check_codes(codes, fmt)
    lut = _typed_table(fmt, dtype.str)
    if lut is not None and c.size < GATHER_MIN:
        return lut[c.astype(np.intp)]
    flat = np.ascontiguousarray(c).reshape(-1)
    out = empty(flat.shape[0], dtype)
    P = None if lut is not None or fmt.kind == "int" else kernel_params(fmt)

    def piece(s):
        part, dst = flat[s:s + C.CHUNK_ELEMS], out[s:s + C.CHUNK_ELEMS]
        if lut is not None:
            gather.serial(part, lut, dst)
        elif P is None:
            dst[:] = _int_values(part, fmt)
        elif dtype == np.float64:
            K.decode_kernel.serial(part, P, dst)
        else:
            tmp = np.empty(part.shape[0], np.float64)
            K.decode_kernel.serial(part, P, tmp)
            dst[:] = tmp

    C.run_pieces(piece, range(0, flat.shape[0], C.CHUNK_ELEMS))
    return out.reshape(c.shape)
    flat = np.ascontiguousarray(c).reshape(-1)
    if fmt.kind == "int":
        return _int_values(flat, fmt).reshape(c.shape)
    out = np.empty(flat.shape[0], dtype=np.float64)
    K.decode_kernel(flat, kernel_params(fmt), out)
    return out.reshape(c.shape)
