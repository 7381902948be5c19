"""Workloads from outside lowbit: ``file.py:function`` specs, ONNX files and the
``lowbit.workloads`` entry-point group.

* ``path/to/file.py:make_workload`` - the file is imported (as a module named after its path)
  and ``make_workload()`` must return a Workload (e.g. a
  :class:`lowbit.sim.torch.TorchWorkload`).
* ``model.onnx`` with a data file ``data.npz`` (keys ``calib``, ``eval_x``, optional
  ``eval_y``) - :class:`lowbit.sim.workloads.onnx_model.OnnxWorkload`.
* an installed package declaring, in its ``pyproject.toml``::

      [project.entry-points."lowbit.workloads"]
      my-model = "my_package.workloads:make_my_model"

  makes ``my-model`` a workload name (the target is called with no arguments).

The factories here are small picklable objects, so the sweep's worker processes rebuild the
same workload from the same spec.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import threading
from pathlib import Path

from .base import _INSTANCES, _REGISTRY, register_workload
from .onnx_model import OnnxWorkload

ENTRY_POINT_GROUP = "lowbit.workloads"
# one registration / instantiation at a time: a Dask worker runs points in several threads
_LOCK = threading.RLock()


class FileWorkloadFactory:
    """``factory()`` imports ``path`` and returns ``function()`` from it."""

    def __init__(self, path: str, function: str):
        self.path, self.function = str(Path(path).resolve()), function

    def __call__(self):
        p = Path(self.path)
        if not p.is_file():
            raise ValueError(f"--workload: file {self.path!r} does not exist")
        modname = "lowbit_user_" + hashlib.sha256(self.path.encode()).hexdigest()[:12]
        mod = sys.modules.get(modname)
        if mod is None:
            spec = importlib.util.spec_from_file_location(modname, p)
            mod = importlib.util.module_from_spec(spec)
            sys.modules[modname] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(modname, None)
                raise
        fn = getattr(mod, self.function, None)
        if not callable(fn):
            names = sorted(n for n in vars(mod) if callable(vars(mod)[n]) and not n.startswith("_"))
            raise ValueError(f"--workload: {self.path} has no function {self.function!r}; "
                             f"callables: {', '.join(names)}")
        wl = fn()
        for attr in ("layers", "evaluate", "forward", "calibration_data"):
            if not callable(getattr(wl, attr, None)):
                raise ValueError(f"--workload: {self.path}:{self.function}() returned "
                                 f"{type(wl).__name__}, not a Workload (no {attr}())")
        return wl


class OnnxWorkloadFactory:
    """``factory()`` loads an ONNX model and its ``.npz`` data as an OnnxWorkload."""

    def __init__(self, path: str, data: str | None):
        self.path = str(Path(path).resolve())
        self.data = None if data is None else str(Path(data).resolve())

    def __call__(self):
        if self.data is None:
            raise ValueError(f"--workload {self.path}: an ONNX workload needs --data FILE.npz "
                             "(keys calib, eval_x, optional eval_y)")
        return OnnxWorkload.from_files(self.path, self.data)


def is_file_spec(spec: str) -> bool:
    return ".py:" in spec


def is_onnx_spec(spec: str) -> bool:
    return spec.lower().endswith(".onnx")


def factory_for_spec(spec: str, data: str | None = None):
    """Factory for ``file.py:function`` / ``model.onnx`` specs, else None."""
    if is_file_spec(spec):
        if data is not None:
            raise ValueError("--data is only for ONNX workloads (--workload model.onnx)")
        path, _, fn = spec.rpartition(":")
        if not fn.isidentifier():
            raise ValueError(f"--workload {spec!r}: expected path/to/file.py:function")
        return FileWorkloadFactory(path, fn)
    if is_onnx_spec(spec):
        return OnnxWorkloadFactory(spec, data)
    if data is not None:
        raise ValueError("--data is only for ONNX workloads (--workload model.onnx)")
    return None


def spec_key(spec: str, data: str | None = None) -> str:
    """Registry name of a spec (ONNX: the model path plus its data file)."""
    if is_onnx_spec(spec) and data is not None:
        return f"{spec}?data={data}"
    return spec


def entry_point_factories() -> dict:
    """{name: entry point} of installed packages' ``lowbit.workloads`` entry points."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


class EntryPointFactory:
    """``factory()`` loads entry point ``name`` of group ``lowbit.workloads`` and calls it."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self):
        eps = entry_point_factories()
        if self.name not in eps:
            raise ValueError(f"entry point {self.name!r} of group {ENTRY_POINT_GROUP} is gone")
        return eps[self.name].load()()


def list_workloads() -> list[str]:
    """Registered names plus the ``lowbit.workloads`` entry points of installed packages."""
    return sorted(set(_REGISTRY) | set(entry_point_factories()))


def resolve_workload(spec: str, data: str | None = None) -> str:
    """Registry name for a workload spec, registering it on first use: a registered name, an
    entry point of group ``lowbit.workloads``, ``path/file.py:function`` or ``model.onnx``
    (with ``data``: an .npz with keys calib, eval_x[, eval_y]).  ValueError listing the
    registered names otherwise."""
    spec = str(spec)
    key = spec_key(spec, data)
    with _LOCK:
        if key in _REGISTRY:
            return key
        fac = factory_for_spec(spec, data)
        if fac is None and spec in entry_point_factories():
            fac = EntryPointFactory(spec)
        if fac is None:
            raise ValueError(f"unknown workload {spec!r}; allowed: "
                             f"{', '.join(list_workloads())}, path/to/file.py:function or "
                             "model.onnx (with --data data.npz)")
        register_workload(key, fac)
        return key


def get_workload(name: str, cached: bool = True):
    """The workload ``name`` (see :func:`resolve_workload`; one shared instance per process if
    ``cached``). Unknown names raise ValueError listing the registered ones."""
    name = resolve_workload(name)
    if not cached:
        return _REGISTRY[name]()
    with _LOCK:
        if name not in _INSTANCES:
            _INSTANCES[name] = _REGISTRY[name]()
        return _INSTANCES[name]
