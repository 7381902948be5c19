"""Shared set-up for the lowbit.formats tests.

* Puts this folder on ``sys.path`` so the independent reference ``lowbit_formats_ref`` imports
  (tests run with ``--import-mode=importlib``).
* Runs numba kernels single-threaded for the many small-input tests (on a loaded 2-core CI box a
  parallel launch costs ~20 ms per call for 32 elements); tests marked ``numba_parallel`` (the
  10^6-element comparisons) keep the default thread count so the parallel path is exercised too.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "numba_parallel: run with numba's default thread count (formats tests)")


@pytest.fixture(autouse=True)
def _numba_threads(request):
    try:
        import numba
    except ImportError:  # pragma: no cover
        yield
        return
    if request.node.get_closest_marker("numba_parallel") is not None:
        yield
        return
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)
