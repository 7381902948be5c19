"""Test-vector generators: exhaustive code pairs and random codes with edge values mixed in."""

from __future__ import annotations

import numpy as np

from lowbit.formats import IntFormat, encode, resolve


def edge_codes(fmt) -> np.ndarray:
    """Edge codes of a format: +-0, min/max subnormal, min normal, 1.0, max, NaN and Inf codes."""
    f = resolve(fmt)
    if isinstance(f, IntFormat):
        return np.array([0, 1, f.qmax & 0xFF, (f.qmin) & ((1 << f.bits) - 1),
                         (f.qmin + 1) & ((1 << f.bits) - 1), (1 << f.bits) - 1], dtype=np.int64)
    m, e = f.mbits, f.ebits
    pos = {0, 1, max((1 << m) - 1, 0), 1 << m, (f.max_field << m) | f.max_mant,
           (f.bias << m) if f.bias < (1 << e) else 0}
    if f.has_nan and f.nan_code >= 0:
        pos.add(f.nan_code)
        if f.nan == "ieee":
            pos.add(((1 << e) - 1) << m | 1)
    if f.has_inf:
        pos.add(((1 << e) - 1) << m)
    codes = set()
    sb = 1 << (f.bits - 1) if f.signed else 0
    for c in pos:
        codes.add(c & ((1 << f.bits) - 1))
        if f.signed:
            codes.add((c | sb) & ((1 << f.bits) - 1))
    return np.array(sorted(codes), dtype=np.int64)


def random_codes(fmt, n: int, rng: np.random.Generator, edge_frac: float = 0.15) -> np.ndarray:
    """``n`` uniformly random codes, ``edge_frac`` of them replaced by :func:`edge_codes`."""
    f = resolve(fmt)
    bits = f.bits
    c = rng.integers(0, 1 << bits, size=n, dtype=np.int64) if bits < 63 else None
    ed = edge_codes(f)
    m = rng.random(n) < edge_frac
    c[m] = rng.choice(ed, size=int(m.sum()))
    return c


def all_pairs(bits_a: int, bits_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) code pair, a major."""
    a = np.repeat(np.arange(1 << bits_a, dtype=np.int64), 1 << bits_b)
    b = np.tile(np.arange(1 << bits_b, dtype=np.int64), 1 << bits_a)
    return a, b


def acc_operands(p_values, acc_fmt, rng: np.random.Generator) -> np.ndarray:
    """Accumulator codes that stress an FMA step: random codes, edges, values close to
    -product (cancellation), close to +product, and tiny/huge relative values."""
    f = resolve(acc_fmt)
    n = len(p_values)
    p = np.where(np.isfinite(p_values), p_values, 1.0)
    kind = rng.integers(0, 6, size=n)
    rnd = random_codes(f, n, rng, edge_frac=0.3)
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.ldexp(1.0, rng.integers(-30, 30, size=n)).astype(np.float64)
        near = -p * (1.0 + rng.standard_normal(n) * 2.0 ** -rng.integers(3, 26, size=n))
        pos = p * (1.0 + rng.standard_normal(n) * 2.0 ** -rng.integers(3, 26, size=n))
        rel = p * scale * rng.choice([-1.0, 1.0], size=n)
        cand = np.where(kind == 1, near, np.where(kind == 2, pos, rel))
        cand = np.clip(cand, -f.max, f.max)
    enc = encode(cand, f, rounding="rne", overflow="saturate").astype(np.int64)
    return np.where(kind == 0, rnd, enc)
