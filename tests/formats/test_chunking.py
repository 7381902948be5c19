"""Conversions run in pieces of ``chunking.CHUNK_ELEMS`` elements (bounded memory); the result
must not depend on the piece size: bit-identical codes, scales and values for tiny pieces (every
row split across pieces, per-tensor and per-channel rows read in column pieces), including
stochastic rounding, whose random integer is a function of the element's index."""

import numpy as np
import pytest

from lowbit.formats import chunking, decode, encode, get_format, quantize, stochastic_bits

BLOCKS = ["mxfp4", "mxfp8_e4m3", "mxfp6_e2m3", "nvfp4", "mxint8", "bfp4", "int8_pt", "int8_pc",
          "int4_g128", "int4_g128_asym", "int8_pc_asym"]
ELEMENTS = ["fp8_e4m3", "fp4_e2m1", "bf16", "int8", "e8m0", "fp16", "int32"]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        an, bn = np.isnan(a), np.isnan(b)
        return np.array_equal(an, bn) and np.array_equal(a[~an].view(f"u{a.itemsize}"),
                                                          b[~bn].view(f"u{b.itemsize}"))
    return np.array_equal(a, b)


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    x = rng.standard_normal(n) * np.exp2(rng.integers(-12, 12, n))
    if n > 8:
        x[rng.choice(n, n // 8, replace=False)] = rng.choice(
            [0.0, -0.0, 1e-42, 3e38, -6.0, 2.0**-140], n // 8)
    with np.errstate(over="ignore"):
        return x.astype(dtype).reshape(shape)


def _run_all(fn, sizes=(7, 97)):
    base = fn()
    old = chunking.CHUNK_ELEMS
    try:
        for n in sizes:
            chunking.CHUNK_ELEMS = n
            yield base, fn()
    finally:
        chunking.CHUNK_ELEMS = old


@pytest.mark.parametrize("name", ELEMENTS)
@pytest.mark.parametrize("rounding", ["rne", "rtz", "stochastic", "stochastic_rne"])
def test_element_results_do_not_depend_on_chunks(name, rounding):
    for dtype in (np.float32, np.float64, ">f2"):
        x = _data((7, 45), dtype, 1)
        views = [x, x[:, ::2], x.T, x[3]]
        for v in views:
            def fn(v=v):
                kw = dict(rounding=rounding, seed=3, nan_input="zero")
                return encode(v, name, **kw), quantize(v, name, **kw)
            for (c0, q0), (c1, q1) in _run_all(fn):
                assert _same(c0, c1) and _same(q0, q1), (name, rounding, dtype, v.shape)


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("rounding", ["rne", "stochastic"])
def test_block_results_do_not_depend_on_chunks(name, rounding):
    fmt = get_format(name)
    shapes = [((6, 100), -1), ((6, 100), 0), ((3, 40, 5), 1), ((2, 3, 70), -1)]
    if isinstance(fmt.block_size, tuple):
        shapes = [((40, 35), -1), ((2, 20, 33), -1)]
    for dtype in (np.float32, np.float64):
        for shape, axis in shapes:
            x = _data(shape, dtype, 2)
            x.reshape(-1)[7] = np.nan  # one NaN block

            def fn(x=x, axis=axis):
                kw = dict(rounding=rounding, seed=11, axis=axis)
                qt = encode(x, fmt, **kw)
                return qt, quantize(x, fmt, **kw)
            for (qa, va), (qb, vb) in _run_all(fn):
                where = (name, rounding, np.dtype(dtype).name, shape, axis)
                assert _same(qa.codes, qb.codes), where
                assert _same(qa.scales, qb.scales), where
                assert qa.tensor_scale == qb.tensor_scale, where
                assert _same(va, vb), where
                assert _same(qa.dequantize(), qb.dequantize()), where
                if rounding == "rne":  # quantize == decode(encode), rounded once to x's dtype
                    assert _same(va, decode(qa).astype(va.dtype)), where


@pytest.mark.parametrize("rule", ["mse", "even", "ceil"])
def test_scale_rules_do_not_depend_on_chunks(rule):
    from dataclasses import replace
    for base in ("mxfp4", "int4_g32", "nvfp4"):
        if rule != "mse" and base == "nvfp4":
            continue
        fmt = replace(get_format(base), scale_rule=rule, name=None)
        x = _data((5, 96), np.float32, 4)
        for (a, _), (b, _) in _run_all(lambda fmt=fmt, x=x: (encode(x, fmt), None)):
            assert _same(a.codes, b.codes) and _same(a.scales, b.scales), (base, rule)


def test_stochastic_stream_is_the_documented_one():
    """Element i of a stochastic conversion uses stochastic_bits(seed, n, sr_bits)[i]: with
    sr_bits=1 every inexact value rounds up exactly where that bit is 1."""
    x = np.full(1000, 1.0 + 2.0**-5, np.float32)  # between fp8_e4m3 1.0 and 1.125
    q = quantize(x, "fp8_e4m3", rounding="stochastic", seed=9, sr_bits=1)
    r = stochastic_bits(9, x.size, sr_bits=1)
    # up iff floor(f * 2) + r >= 2, f = 0.25: up iff r >= 2 never; use f = 0.5 instead
    assert np.all(q == 1.0)
    x = np.full(1000, 1.0625, np.float32)  # f = 0.5
    q = quantize(x, "fp8_e4m3", rounding="stochastic", seed=9, sr_bits=1)
    assert np.array_equal(q == 1.125, r == 1)
    assert 400 < int(r.sum()) < 600


def test_generator_seeds_advance_and_int_seeds_repeat():
    x = np.full(256, 1.0625, np.float32)
    g = np.random.default_rng(1)
    a = encode(x, "fp8_e4m3", rounding="stochastic", seed=g)
    b = encode(x, "fp8_e4m3", rounding="stochastic", seed=g)
    assert not np.array_equal(a, b)
    assert np.array_equal(encode(x, "fp8_e4m3", rounding="stochastic", seed=5),
                          encode(x, "fp8_e4m3", rounding="stochastic", seed=5))


# ---- run_pieces: the thread scheduling every conversion uses --------------------------------
def _threads(n):
    """Context: numba's thread count set to ``n`` (run_pieces uses that many threads)."""
    import contextlib

    import numba

    @contextlib.contextmanager
    def ctx():
        old = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        try:
            yield numba.get_num_threads()
        finally:
            numba.set_num_threads(old)
    return ctx()


def test_run_pieces_returns_results_in_piece_order_with_bounded_pieces_in_flight():
    import threading
    import time
    lock, live, peak = threading.Lock(), [0], [0]

    def fn(p):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.002 * (p % 3))  # uneven pieces finish out of order
        with lock:
            live[0] -= 1
        return p * p

    with _threads(2) as n:
        got = chunking.run_pieces(fn, iter(range(40)))
    assert got == [p * p for p in range(40)]
    assert 1 <= peak[0] <= n
    assert chunking.run_pieces(fn, []) == [] and chunking.run_pieces(fn, [3]) == [9]


def test_run_pieces_raises_the_first_error_in_piece_order():
    import time

    def fn(p):
        if p == 7:
            time.sleep(0.05)  # piece 12 fails first in time; 7 comes first in piece order
            raise ValueError("piece 7")
        if p == 12:
            raise ValueError("piece 12")
        return p

    with _threads(2):
        with pytest.raises(ValueError, match="piece 7"):
            chunking.run_pieces(fn, range(40))

    def pieces():  # a failure while making a piece, after the ones before it ran
        yield from range(5)
        raise RuntimeError("no piece 5")

    seen = []
    with _threads(2):
        with pytest.raises(RuntimeError, match="no piece 5"):
            chunking.run_pieces(seen.append, pieces())
    assert sorted(seen) == [0, 1, 2, 3, 4]


def test_run_pieces_inside_a_piece_runs_inline():
    """A piece's own run_pieces call runs on the piece's thread, whichever thread that is (the
    caller's or a pool thread): handing its pieces to other threads would make pieces wait on
    each other."""
    import threading
    import time

    def inner(p):
        time.sleep(0.003)
        return threading.get_ident()

    def outer(p):
        if p % 2:
            return True  # quick pieces: a thread runs out of outer work early
        ids = chunking.run_pieces(inner, range(10))
        return set(ids) == {threading.get_ident()}

    with _threads(2):
        assert all(chunking.run_pieces(outer, range(5)))


def test_direct_piece_bounds():
    """Pieces of passes without per-piece buffers: between CHUNK_ELEMS and DIRECT_PIECES times
    it, and at least two per thread where the tensor is large enough."""
    c, most = chunking.CHUNK_ELEMS, chunking.DIRECT_PIECES * chunking.CHUNK_ELEMS
    with _threads(2) as t:
        for n in (1, c, 3 * c, 4 * c * t, 16 * c * t, 10 ** 9):
            p = chunking.direct_piece(n)
            assert c <= p <= most, (n, p)
            if n >= 2 * t * c:
                assert -(-n // p) >= 2 * t, (n, p)
        assert chunking.direct_piece(10 ** 9) == most
