"""Composable weight quantisers: ``[smoothquant[:ALPHA]+][hadamard[:BLOCK]+](rtn|gptq|mrgptq)``.

A quantiser spec is what ``lowbit sweep --quantizer`` / ``lowbit search --quantizer`` take:

* ``rtn`` -- round-to-nearest with the format's own scale rule (amax / OCP FLOOR / NVFP4).
* ``gptq`` -- GPTQ (Frantar et al. 2023) on the layer's calibration inputs, block scales by the
  format's own rule on the updated weights (:func:`~lowbit.sim.quantizers.gptq_quantize`).
* ``mrgptq`` -- GPTQ with a format-specific scale search (the MR-GPTQ idea, Egiazarian et al.
  2025): each block scale is chosen among candidates ``c x`` the rule's scale (E8M0 scales:
  ``c`` in {1/2, 1, 2}; other scales: 0.50, 0.55, ..., 1.00), rounded into the scale format,
  to minimise the GPTQ objective of its group, i.e. the Hessian-weighted error
  ``sum_j ((w_j - q_j) / U_jj)^2`` with the in-group error feedback, per row.
* ``smoothquant[:ALPHA]`` (default 0.5) -- SmoothQuant scale migration (Xiao et al. 2023):
  ``s_j = max|X_j|^a / max|W_j|^(1-a)`` from the calibration inputs, ``W' = W diag(s)``,
  inputs ``x / s`` at run time (in a deployment folded into the preceding op).
* ``hadamard[:BLOCK]`` -- block-diagonal orthonormal Walsh-Hadamard rotation ``R`` of the
  reduction axis (QuaRot / MR-GPTQ style): ``W' = W R``, inputs ``x R`` at run time. BLOCK
  defaults to the weight format's group length when that is a power of two (32 for MX, 16 for
  NVFP4, 128 for int4_g128) and to 32 otherwise. Layers whose K is not a multiple of BLOCK are
  left unrotated (listed in ``LayerQuant.notes``).

Transforms are applied in the order smoothquant, hadamard, then the weight quantiser (GPTQ sees
the transformed calibration inputs). A bare transform means ``+rtn``. In exact arithmetic every
transform leaves the layer's output unchanged; only the rounding differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..operands import block_len_along_k, resolve
from .gptq import gptq_quantize
from .hadamard import block_hadamard
from .smoothquant import smoothquant_scales

WEIGHT_METHODS = ("rtn", "gptq", "mrgptq")
TRANSFORMS = ("smoothquant", "hadamard")
DEFAULT_ALPHA = 0.5
DEFAULT_ROTATION = 32
QUANTIZER_HELP = ("weight quantiser(s): rtn, gptq, mrgptq (GPTQ + format-specific scale "
                  "search), optionally after smoothquant[:ALPHA] and/or hadamard[:BLOCK] joined "
                  "with '+', e.g. rtn,gptq,smoothquant,hadamard+rtn,hadamard:16+gptq")


@dataclass(frozen=True)
class QuantizerSpec:
    """A parsed quantiser: ``method`` (rtn | gptq | mrgptq), SmoothQuant ``alpha`` (None = off),
    Hadamard ``rotation`` (None = off, 0 = the format's group length, else the block size)."""

    method: str = "rtn"
    alpha: float | None = None
    rotation: int | None = None

    @property
    def name(self) -> str:
        parts = []
        if self.alpha is not None:
            parts.append("smoothquant" if self.alpha == DEFAULT_ALPHA else
                         f"smoothquant:{self.alpha:g}")
        if self.rotation is not None:
            parts.append("hadamard" if self.rotation == 0 else f"hadamard:{self.rotation}")
        parts.append(self.method)
        return "+".join(parts)

    @property
    def needs_calibration(self) -> bool:
        return self.method != "rtn" or self.alpha is not None

    def __str__(self) -> str:
        return self.name


def parse_quantizer(spec) -> QuantizerSpec:
    """QuantizerSpec from a string such as ``"hadamard:16+gptq"`` (or a QuantizerSpec).
    ValueError naming ``--quantizer`` and the grammar for anything else."""
    if isinstance(spec, QuantizerSpec):
        return spec
    s = str(spec).strip().lower()
    bad = ValueError(f"--quantizer: bad quantizer {spec!r}; {QUANTIZER_HELP}")
    if not s:
        raise bad
    method, alpha, rot = None, None, None
    for i, tok in enumerate(s.split("+")):
        name, _, arg = tok.partition(":")
        last = i == len(s.split("+")) - 1
        if name in WEIGHT_METHODS:
            if arg or not last:
                raise bad
            method = name
        elif name == "smoothquant":
            if alpha is not None or rot is not None:  # order: smoothquant before hadamard
                raise bad
            try:
                alpha = float(arg) if arg else DEFAULT_ALPHA
            except ValueError:
                raise bad from None
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"--quantizer: smoothquant alpha {alpha:g} must be in [0, 1]")
        elif name == "hadamard":
            if rot is not None:
                raise bad
            try:
                rot = int(arg) if arg else 0
            except ValueError:
                raise bad from None
            if rot < 0 or (rot and rot & (rot - 1)):
                raise ValueError(f"--quantizer: hadamard block {rot} must be a power of two")
        else:
            raise bad
    return QuantizerSpec(method or "rtn", alpha, rot)


def rotation_block(spec: QuantizerSpec, w_fmt, K: int) -> int | None:
    """Hadamard block length used for a layer with reduction length K (None: not rotated)."""
    if spec.rotation is None:
        return None
    b = spec.rotation
    if b == 0:
        b = DEFAULT_ROTATION
        f = resolve(w_fmt)
        if f is not None and f.kind == "block":
            g = block_len_along_k(f, K, "hadamard")
            if g < K and g & (g - 1) == 0:
                b = g
    return b if K % b == 0 else None


@dataclass
class LayerQuant:
    """A layer prepared by a quantiser: the float weight after transforms ``w`` (M, K), the
    quantised weight values ``values`` (GPTQ result) or None (RTN by the GEMM operand
    preparation) with the block ``scales`` (M, n_groups; per-tensor scale included) and
    ``tensor_scale`` GPTQ used, and the input transform (``x / in_scale``, then the
    rotation)."""

    w: np.ndarray
    values: np.ndarray | None = None
    scales: np.ndarray | None = None
    tensor_scale: float = 1.0
    in_scale: np.ndarray | None = None
    rotation: int | None = None
    notes: list = field(default_factory=list)

    def transform_input(self, x2d: np.ndarray) -> np.ndarray:
        """The run-time input transform of the layer (identity when there is none)."""
        x = np.asarray(x2d, np.float64)
        if self.in_scale is not None:
            x = x / self.in_scale
        if self.rotation is not None:
            x = block_hadamard(x, self.rotation, axis=-1)
        return x


def quantize_layer(w2d, calib_x, w_fmt, spec, name: str = "layer") -> LayerQuant:
    """Apply quantiser ``spec`` to the (M, K) float weight ``w2d`` of one layer for weight
    format ``w_fmt`` (None: float, transforms still applied); ``calib_x`` (N, K) float inputs
    of the layer (needed by gptq / mrgptq / smoothquant)."""
    spec = parse_quantizer(spec)
    w = np.asarray(w2d, np.float64)
    lq = LayerQuant(w)
    x = None
    if spec.needs_calibration:
        if calib_x is None:
            raise ValueError(f"quantizer {spec.name} needs calibration inputs for layer {name}")
        x = np.asarray(calib_x, np.float64).reshape(-1, w.shape[1])
    if spec.alpha is not None:
        s = smoothquant_scales(np.abs(x).max(axis=0), w, spec.alpha)
        lq.in_scale, w, x = s, w * s, x / s
    b = rotation_block(spec, w_fmt, w.shape[1])
    if spec.rotation is not None:
        if b is None:
            lq.notes.append(f"{name}: not rotated (K={w.shape[1]} is not a multiple of the "
                            "Hadamard block)")
        else:
            lq.rotation = b
            w = block_hadamard(w, b, axis=-1)
            if x is not None:
                x = block_hadamard(x, b, axis=-1)
    lq.w = w
    if spec.method != "rtn" and w_fmt is not None:
        values, info = gptq_quantize(w, x, w_fmt, scale_search=spec.method == "mrgptq",
                                     return_info=True)
        lq.values = np.asarray(values, np.float64)
        lq.scales, lq.tensor_scale = info.get("scales"), float(info.get("tensor_scale", 1.0))
    return lq
