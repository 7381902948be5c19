"""lowbit: bit-exact low-precision number formats, simulators, hardware and cost models.

Sub-packages: ``lowbit.formats``, ``lowbit.sim``, ``lowbit.hw``, ``lowbit.cost_models``,
``lowbit.kernels``. The ``lowbit`` command line lives in :mod:`lowbit.main`.
"""

__version__ = "0.1.0"
