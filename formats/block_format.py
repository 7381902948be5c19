"""Scaled / block format descriptor: one generic description for MX, NVFP4, BFP and scaled INT.

``BlockFormat(element, scale, block_size, scale_rule, tensor_scale, symmetric)``; the value of
element ``i`` of a block is ``decode(P_i) * X_block * (S_tensor or 1)`` (OCP MX v1.0 section 5:
``v_i = X * P_i``), or ``(q_i - zero_point) * X_block`` for asymmetric INT.

``block_size`` (torchao's single notion of granularity):

* ``k > 0``   1-D blocks of ``k`` consecutive elements along ``axis`` (MX: 32, NVFP4: 16,
  per-group INT: g); a ragged last block is zero-padded.
* ``(k, k)``  2-D ``k x k`` tiles over the last two axes (weights; TE NVFP4 16x16).
* ``-1``      the whole ``axis`` is one block: per-channel scaling.
* ``None``    one block for the whole tensor: per-tensor scaling.

``scale`` is a FloatFormat the scale is stored in (E8M0, UE4M3, ...), or ``None`` for an FP32 scale.
``scale_rule`` picks the scale from the block's amax, see :mod:`lowbit.formats.scale_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

import numpy as np

from lowbit.formats.float_format import FloatFormat
from lowbit.formats.int_format import IntFormat
from lowbit.formats.layout import BlockLayout
from lowbit.formats.scale_rules import POW2_RULES

SCALE_RULES = ("floor", "ceil", "rceil", "even", "mse", "amax")

ElementFormat = Union[FloatFormat, IntFormat]


@dataclass(frozen=True)
class BlockFormat:
    element: ElementFormat
    scale: FloatFormat | None
    block_size: int | tuple | None = 32
    scale_rule: str | Callable = "floor"
    tensor_scale: bool = False
    symmetric: bool = True
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.element, (FloatFormat, IntFormat)):
            raise TypeError(f"element must be a FloatFormat or IntFormat, got {self.element!r}")
        if self.scale is not None and not isinstance(self.scale, FloatFormat):
            raise TypeError(f"scale must be a FloatFormat or None (fp32), got {self.scale!r}")
        bs = self.block_size
        if isinstance(bs, list):
            bs = tuple(bs)
            object.__setattr__(self, "block_size", bs)
        ok = (bs is None or bs == -1 or (isinstance(bs, int) and bs > 0)
              or (isinstance(bs, tuple) and len(bs) == 2 and all(isinstance(b, int) and b > 0
                                                                  for b in bs)))
        if not ok:
            raise ValueError(f"block_size must be a positive int, a (k, k) tuple, -1 (per channel) "
                             f"or None (per tensor), got {bs!r}")
        if not callable(self.scale_rule) and self.scale_rule not in SCALE_RULES:
            raise ValueError(f"scale_rule must be one of {list(SCALE_RULES)} or a callable, "
                             f"got {self.scale_rule!r}")
        pow2_scale = self.scale is not None and self.scale.mbits == 0
        if self.tensor_scale and isinstance(self.scale_rule, str) and (
                self.scale_rule in POW2_RULES or (self.scale_rule == "mse" and pow2_scale)):
            raise ValueError(f"tensor_scale=True needs a scale_rule that divides by the tensor "
                             f"scale ('amax', 'mse' over a non-power-of-two scale format, or a "
                             f"callable), got {self.scale_rule!r}: a power-of-two block scale "
                             f"times an FP32 tensor scale is not a power of two")
        if not self.symmetric and not isinstance(self.element, IntFormat):
            raise ValueError("symmetric=False (zero point) needs an IntFormat element")
        if not self.symmetric and self.element.signed:
            raise ValueError("asymmetric INT formats use an unsigned element (IntFormat(b, "
                             "signed=False)) with a zero point")
        if self.name is None:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        bs = self.block_size
        g = ("pt" if bs is None else "pc" if bs == -1 else
             f"t{bs[0]}x{bs[1]}" if isinstance(bs, tuple) else f"b{bs}")
        sc = "fp32" if self.scale is None else self.scale.name
        return f"{self.element.name}_{g}_{sc}"

    @property
    def kind(self) -> str:
        return "block"

    @property
    def block_elems(self) -> int | None:
        """Elements per block (None when it depends on the tensor shape)."""
        bs = self.block_size
        if isinstance(bs, tuple):
            return bs[0] * bs[1]
        if isinstance(bs, int) and bs > 0:
            return bs
        return None

    @property
    def scale_bits(self) -> int:
        """Storage bits of one block scale (a UE4M3 scale is stored in a byte)."""
        if self.scale is None:
            return 32
        return 8 * ((self.scale.bits + 7) // 8)

    @property
    def bits(self) -> int:
        return self.element.bits

    @property
    def bits_per_element(self) -> float:
        """Element bits + scale (and zero-point) bits amortised over a block; excludes the
        per-tensor scale (see QuantizedTensor.bits_per_element), and per-channel / per-tensor
        scales (block size unknown until a shape is given)."""
        k = self.block_elems
        extra = self.scale_bits + (0 if self.symmetric else self.element.bits)
        return self.element.bits + (extra / k if k else 0.0)

    def storage_bits(self, shape, axis=-1) -> int:
        """Bits to store a tensor of ``shape`` blocked along ``axis``: elements, one scale per
        block (``scale_bits``), zero points (asymmetric INT: element bits per block) and the
        32-bit per-tensor scale. Ragged tails store only their real elements."""

        lay = BlockLayout.make(shape, self.block_size, axis)
        numel = int(np.prod(shape, dtype=np.int64))
        per_block = self.scale_bits + (0 if self.symmetric else self.element.bits)
        return (numel * self.element.bits + lay.n_blocks * per_block
                + (32 if self.tensor_scale else 0))

    @property
    def max(self) -> float:
        return self.element.max

    @property
    def has_nan(self) -> bool:
        return self.element.has_nan or (self.scale is not None and self.scale.has_nan)

    def __str__(self) -> str:
        return self.name
