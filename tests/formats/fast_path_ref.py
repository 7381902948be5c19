"""Run a conversion on the fast paths and on the exact kernel (``LOWBIT_SLOW_FORMATS=1``), for
the fast-path equality tests (module name unique: tests run with ``--import-mode=importlib``)."""

import pytest

from lowbit.formats import encode, quantize
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
