"""Layer quantisation config: which formats the operands of a GEMM are quantised to and which
accumulator model sums the products.

``QuantConfig(weight=None, act=None, accum="exact", weight_axis=None, act_axis=None, dot="auto",
multiplier="exact")``
(frozen):

* ``weight`` / ``act``: a lowbit format (name or object from :mod:`lowbit.formats`: float, int
  or block format) or ``None`` (no quantisation: the float64 values are used as they are).
* ``accum``: an accumulator model of :mod:`lowbit.formats.accum` or a string for
  :func:`~lowbit.formats.accum.parse_accum` (``"exact"``, ``"fp32"``, ``"fp16_pairwise"``,
  ``"fp32_chunk32"``, ``"int32"``, ``"int16_sat"`` ...).
* ``weight_axis`` / ``act_axis``: axis of the weight / activation tensor (as passed to the layer
  function) along which block formats group elements; ``None`` (default) = the reduction axis K
  (qlinear: ``in`` of (out, in) weights and of (N, in) inputs; qmatmul: axis 0 of b and axis -1
  of a; qconv2d: the (kh, kw, c) patch axis).  A non-K axis forces the element path.
* ``multiplier``: the multiplier model of :mod:`lowbit.formats.multiplier` or its string -
  ``"exact"`` (default), ``"lmul"`` (L-Mul, Luo & Sun 2024), ``"lmul_l<k>"``, or a function on
  element codes; anything but the exact product runs the engine's multiplier path
  (:mod:`lowbit.sim.mulpath`).
* ``dot``: ``"auto"`` | ``"block"`` | ``"element"`` - how block-scaled operands are multiplied
  (see :mod:`lowbit.sim.engine`).

Every layer function (:func:`~lowbit.sim.qmatmul`, :func:`~lowbit.sim.qlinear`,
:func:`~lowbit.sim.qconv2d`) takes one ``config`` argument: a :class:`QuantConfig`, or an
accumulator model / string alone (operands not quantised), see :func:`as_config`.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowbit.formats.accum import AccumModel, parse_accum
from lowbit.formats.multiplier import parse_multiplier

from .checks import axis_arg
from .operands import format_name, resolve

DOT_MODES = ("auto", "block", "element")


@dataclass(frozen=True)
class QuantConfig:
    """Per-layer quantisation + accumulation config (see module docstring)."""

    weight: object = None
    act: object = None
    accum: object = "exact"
    weight_axis: int | None = None
    act_axis: int | None = None
    dot: str = "auto"
    multiplier: object = "exact"

    def __post_init__(self):
        for name, parse in (("weight", resolve), ("act", resolve), ("accum", parse_accum),
                            ("multiplier", parse_multiplier)):
            try:
                value = parse(getattr(self, name))
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"QuantConfig {name}: {exc}") from None
            object.__setattr__(self, name, value)
        for name in ("weight_axis", "act_axis"):
            object.__setattr__(self, name, axis_arg(getattr(self, name), f"QuantConfig {name}"))
        if not isinstance(self.dot, str) or self.dot not in DOT_MODES:
            raise ValueError(f"QuantConfig dot={self.dot!r}; allowed: {', '.join(DOT_MODES)}")

    def __str__(self):
        mul = "" if self.multiplier.is_exact else f", multiplier={self.multiplier.name}"
        return (f"QuantConfig(weight={format_name(self.weight)}, act={format_name(self.act)}, "
                f"accum={self.accum.name}, dot={self.dot}{mul})")


def make_config(weight, act=None, accum="exact") -> QuantConfig:
    """``QuantConfig(weight, act, accum)`` with ``act`` defaulting to the weight format (the
    usual "W and A in one format" sweep point)."""
    return QuantConfig(weight=weight, act=weight if act is None else act, accum=accum)


def as_config(config, name: str = "config") -> QuantConfig:
    """The :class:`QuantConfig` for a layer's ``config`` argument: a QuantConfig is used as it
    is; an accumulator model or string (``"fp32"``), or ``None`` (= ``"exact"``), means
    unquantised operands summed by that accumulator.  ``name`` (the caller's argument) prefixes
    the error message; anything else raises TypeError."""
    if isinstance(config, QuantConfig):
        return config
    if config is None or isinstance(config, (str, AccumModel)):
        try:
            return QuantConfig(accum=parse_accum(config))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    raise TypeError(f"{name}={config!r}; allowed: a QuantConfig, an accumulator model, an "
                    "accumulator string (e.g. 'exact', 'fp32', 'int32') or None")
