"""numba helpers: kernels compiled twice, serially and in parallel, picked by problem size.

numba's parallel launch costs tens of microseconds to milliseconds on a busy machine, which
dominates small calls (a GPTQ column, one block); below ``PARALLEL_MIN`` elements the serial
twin runs instead. Both twins are cached on disk under distinct names. The serial twin releases
the GIL (``nogil=True``): the chunked conversions run it on several pieces at once from a thread
pool (:func:`lowbit.formats.chunking.run_pieces`).
"""

from __future__ import annotations

import types

from numba import njit

PARALLEL_MIN = 1 << 16


class DualKernel:
    def __init__(self, fn):
        self.parallel = njit(cache=True, parallel=True)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                  fn.__defaults__, fn.__closure__)
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        twin.__doc__ = fn.__doc__
        self.serial = njit(cache=True, nogil=True)(twin)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, *args):
        n = args[0].shape[0]
        return (self.parallel if n >= PARALLEL_MIN else self.serial)(*args)


def dual_kernel(fn) -> DualKernel:
    """Decorator: ``fn`` (a loop using ``prange`` over its first argument) as a DualKernel."""
    return DualKernel(fn)
