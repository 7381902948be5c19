"""The output-buffer cache (lowbit.formats.buffers): a large result's memory is handed out again
only when no array refers to it, within the byte limit, and results never change under the
caller."""

import threading

import numpy as np
import pytest

from lowbit.formats import buffers, decode, encode, quantize, release_buffers

SMALL = 1 << 20  # a threshold the tests lower the cache to, so that they stay cheap
N = SMALL // 4  # float32 elements of one cached result


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.delenv(buffers.CACHE_ENV, raising=False)
    monkeypatch.setattr(buffers, "MIN_CACHED_BYTES", SMALL)
    release_buffers()
    yield
    release_buffers()


def address(a):
    """Start of ``a``'s memory (holding the owner itself would keep it in use)."""
    return a.__array_interface__["data"][0]


def test_freed_result_is_reused_and_held_one_is_not():
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    y = quantize(x, "fp8_e4m3")
    first = address(y)
    assert y.base is not None and y.base.nbytes == y.nbytes
    z = quantize(x, "fp4_e2m1")  # y still held: new memory
    assert not np.shares_memory(y, z)
    del y
    w = quantize(x, "fp8_e5m2")
    assert address(w) == first
    assert buffers.cached_bytes() == (2 * SMALL, 0)


@pytest.mark.parametrize("keep", ["view", "slice", "memoryview", "reshape", "astype_copy"])
def test_anything_derived_from_a_result_keeps_its_memory(keep):
    x = np.random.default_rng(1).standard_normal(N).astype(np.float32)
    y = quantize(x, "fp8_e4m3")
    expect = y.copy()
    held = {"view": lambda a: a.view(np.uint32), "slice": lambda a: a[5:17],
            "memoryview": memoryview, "reshape": lambda a: a.reshape(2, -1),
            "astype_copy": lambda a: a.astype(np.float64)}[keep](y)
    nbytes = y.nbytes
    del y
    for f in ("fp4_e2m1", "fp6_e2m3", "mxfp4", "int8"):
        quantize(x * 3, f)  # would overwrite the memory if it were handed out again
    if keep == "astype_copy":  # a copy does not hold the result: its memory is free again
        assert buffers.cached_bytes()[1] == nbytes
    else:
        assert buffers.cached_bytes()[0] >= nbytes
        got = np.asarray(held).view(np.uint8)
        assert np.array_equal(got, np.asarray(
            {"view": expect.view(np.uint32), "slice": expect[5:17],
             "memoryview": expect, "reshape": expect.reshape(2, -1)}[keep]).view(np.uint8))


def test_results_equal_fresh_memory_results_for_every_output_kind(monkeypatch):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((N // 256, 256)) * 8).astype(np.float32)
    runs = {}
    for cache in ("0", "1024"):
        monkeypatch.setenv(buffers.CACHE_ENV, cache)
        got = []
        for _ in range(2):  # the second round reuses the first round's freed buffers
            del got
            got = [quantize(x, "fp8_e4m3"), encode(x, "fp8_e4m3"), quantize(x, "nvfp4"),
                   quantize(x, "mxfp4"), quantize(x, "int4_g128"),
                   encode(x, "mxfp6_e2m3").dequantize(np.float32),
                   decode(encode(x, "bf16"), "bf16", np.float32),
                   quantize(x.astype(np.float64), "fp8_e5m2")]
        runs[cache] = got
        in_use, free = buffers.cached_bytes()
        assert (in_use, free) == ((0, 0) if cache == "0" else (8 * SMALL, 0))
    for a, b in zip(runs["1024"], runs["0"]):
        assert a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def test_byte_limit_evicts_free_buffers_and_leaves_the_rest_uncached(monkeypatch):
    monkeypatch.setenv(buffers.CACHE_ENV, str(2 * SMALL / (1 << 20)))  # room for two results
    a = buffers.empty(N, np.float32)
    b = buffers.empty((2, N // 2), np.float32)
    c = buffers.empty(N, np.float32)  # both in use: no room, a plain array
    assert a.base is not None and b.base is not None and c.base is None
    assert c.flags.owndata
    del a
    d = buffers.empty(SMALL, np.uint8)  # same byte size: reuses a's buffer
    assert buffers.cached_bytes() == (2 * SMALL, 0) and d.base is not None
    del b, d
    e = buffers.empty(2 * N, np.float32)  # needs both slots: drops the two free buffers
    assert e.base is not None and buffers.cached_bytes() == (2 * SMALL, 0)
    big = buffers.empty(3 * N, np.float32)  # larger than the whole limit
    assert big.base is None


def test_small_results_and_cache_off_are_plain_arrays(monkeypatch):
    assert buffers.empty(N - 1, np.float32).base is None
    monkeypatch.setenv(buffers.CACHE_ENV, "0")
    assert buffers.empty(4 * N, np.float32).base is None
    assert buffers.cached_bytes() == (0, 0)


def test_release_returns_free_bytes_and_keeps_arrays_in_use_valid():
    a = buffers.empty(N, np.float32)
    a[:] = 7
    b = buffers.empty(N, np.float32)
    del b
    assert release_buffers() == SMALL
    assert buffers.cached_bytes() == (0, 0)
    c = buffers.empty(N, np.float32)
    c[:] = 0
    assert np.all(a == 7) and not np.shares_memory(a, c)


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf"])
def test_bad_cache_size_names_the_variable_and_allowed_values(monkeypatch, value):
    monkeypatch.setenv(buffers.CACHE_ENV, value)
    with pytest.raises(ValueError, match=rf"{buffers.CACHE_ENV}=.*number of MiB >= 0"):
        quantize(np.zeros(N, np.float32), "fp8_e4m3")


def test_threads_never_share_a_live_result():
    rng = np.random.default_rng(3)
    xs = [(rng.standard_normal(N) * 4).astype(np.float32) for _ in range(2)]
    want = [quantize(x, "fp8_e4m3").copy() for x in xs]
    bad = []

    def work(i):
        for _ in range(20):
            y = quantize(xs[i], "fp8_e4m3")
            if not np.array_equal(y, want[i]):
                bad.append(i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not bad


def test_real_threshold_is_32_mib(monkeypatch):
    monkeypatch.undo()  # the module's own threshold
    release_buffers()
    assert buffers.MIN_CACHED_BYTES == 32 << 20
    at = quantize(np.ones((32 << 20) // 4, np.float32), "fp8_e4m3")
    below = quantize(np.ones((32 << 20) // 4 - 1, np.float32), "fp8_e4m3")
    assert buffers.cached_bytes() == (32 << 20, 0) and below.base is None
    assert np.all(at == 1) and np.all(below == 1)
