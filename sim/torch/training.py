"""Low-precision training emulation: quantised forward and backward GEMMs in PyTorch.

A linear layer ``Y = X W^T + b`` runs three GEMMs, each in "NT" form ``C = A @ B^T`` with the
reduction along the last axis of both operands, and each with its own :class:`GemmSpec`:

=========  ===========================  =========================  ====================
GEMM       A (rows x reduction)         B (cols x reduction)       reduction axis
=========  ===========================  =========================  ====================
fprop      X (N, K)                     W (M, K)                   K = in features
dgrad      dY (N, M)                    W^T (K, M)                 M = out features
wgrad      dY^T (M, N)                  X^T (K, N)                 N = tokens / pixels
=========  ===========================  =========================  ====================

Each operand is quantised by a :class:`TensorQuant` with :func:`lowbit.formats.quantize`
(any lowbit format: float, INT, fixed point, MX, NVFP4, ...): blocks along the reduction axis
(``block="1d"``), or ``block="2d"``: k x k tiles over the tensor, so a tensor and its transpose
quantise identically (the weight in fprop and dgrad: NVFP4 training's 16x16 weight blocks);
rounding RNE or any lowbit rounding mode, e.g. ``"stochastic"`` with ``sr_bits`` random bits,
seeded per layer, step and GEMM (reproducible); ``scaling="delayed"``: per-tensor scale from the
amax history of previous steps (Transformer Engine's FP8 delayed scaling).  ``GemmSpec.rht``:
a random Hadamard transform of size r (seeded random signs x block Hadamard along the reduction
axis, applied to both operands, so it cancels in exact arithmetic: ``(T a).(T b) = a.b``).
``GemmSpec.accum``: the accumulator model, run by :func:`lowbit.sim.qmatmul` (operands that
lowbit.sim quantises itself - RNE, 1-D, current scaling - in their format, so MX / NVFP4 take the
block-dot path as in inference; the others as quantised values); ``None``: float64 BLAS on the
quantised values (accumulation not modelled; fast).

Gradient estimators of the forward quantisers (``TrainConfig.estimator``):

* ``"ste"`` - straight-through estimator (Bengio, Leonard & Courville 2013): dQ(x)/dx = 1;
* ``"clipped"`` - clipped STE (Hubara et al. 2016, "Quantized Neural Networks"): zero gradient
  where ``x`` saturated (:func:`clipped_mask`);
* ``"lsq"`` - learned step size (Esser et al. 2020, "LSQ"): a trainable per-tensor step
  ``s`` for INT formats, ``Q(x) = round(clamp(x / s, Qn, Qp)) * s`` with the LSQ gradients of
  ``s`` (gradient scale ``1 / sqrt(numel * Qp)``, init ``2 mean|x| / sqrt(Qp)``).

The bias gradient and everything outside the GEMMs stay float.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import lowbit.formats as lf
from lowbit.sim import QuantConfig, qmatmul
from lowbit.sim.quantizers import block_hadamard

from .emulate import as_numpy, from_numpy

BLOCK_MODES = ("1d", "2d")
SCALING_MODES = ("current", "delayed")
ESTIMATORS = ("ste", "clipped", "lsq")
GEMMS = ("fprop", "dgrad", "wgrad")


@dataclass(frozen=True)
class TensorQuant:
    """How one GEMM operand is quantised (see the module docstring)."""

    fmt: object = None
    rounding: str = "rne"
    sr_bits: int = 32
    block: str = "1d"
    scaling: str = "current"
    amax_history: int = 16

    def __post_init__(self):
        object.__setattr__(self, "fmt", None if self.fmt is None else lf.resolve(self.fmt))
        lf.rounding_mode(self.rounding)  # ValueError naming the allowed modes
        if self.block not in BLOCK_MODES:
            raise ValueError(f"block={self.block!r}; allowed: {', '.join(BLOCK_MODES)}")
        if self.scaling not in SCALING_MODES:
            raise ValueError(f"scaling={self.scaling!r}; allowed: {', '.join(SCALING_MODES)}")
        if self.block == "2d" and (self.fmt is None or self.fmt.kind != "block"
                                   or not isinstance(self.fmt.block_size, int)):
            raise ValueError(f"block='2d' needs a 1-D block format (k -> k x k tiles), got {self.fmt}")
        if self.scaling == "delayed" and (self.fmt is None or self.fmt.kind == "block"):
            raise ValueError("scaling='delayed' is for element formats (per-tensor FP8 scaling)")
        if not 1 <= int(self.sr_bits) <= 32:
            raise ValueError(f"sr_bits={self.sr_bits!r}; allowed: 1..32")

    @property
    def stochastic(self) -> bool:
        return lf.rounding_mode(self.rounding) in lf.STOCHASTIC_ROUNDING

    def tile_format(self):
        k = self.fmt.block_size
        return dataclasses.replace(self.fmt, block_size=(k, k), name=f"{self.fmt.name}_{k}x{k}")


@dataclass(frozen=True)
class GemmSpec:
    """Quantisation of one GEMM: operands ``a`` / ``b``, random Hadamard size, accumulator."""

    a: TensorQuant = TensorQuant()
    b: TensorQuant = TensorQuant()
    rht: int | None = None
    accum: object = None

    def __post_init__(self):
        if self.rht is not None and (self.rht < 2 or self.rht & (self.rht - 1)):
            raise ValueError(f"rht={self.rht!r}; expected None or a power of two >= 2")
        if self.accum is not None:
            QuantConfig(accum=self.accum)  # validates the accumulator name


@dataclass(frozen=True)
class TrainConfig:
    """The three GEMM specs of a layer and the forward quantisers' gradient estimator."""

    fprop: GemmSpec = GemmSpec()
    dgrad: GemmSpec = GemmSpec()
    wgrad: GemmSpec = GemmSpec()
    estimator: str = "ste"
    seed: int = 0

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r}; allowed: {', '.join(ESTIMATORS)}")
        if self.estimator == "lsq":
            for t in (self.fprop.a, self.fprop.b):
                if t.fmt is not None and t.fmt.kind != "int":
                    raise ValueError(f"estimator 'lsq' needs INT forward formats, got {t.fmt}")


# ------------------------------------------------------------------------------ numerics


def rht_signs(size: int, seed: int) -> np.ndarray:
    """The seeded random signs (+-1, length ``size``) of the random Hadamard transform."""
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=size)


def apply_rht(t: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``t`` (R, L) -> each length-``size`` block b of every row becomes ``H (s * b) / sqrt(size)``
    (H Sylvester Hadamard, s :func:`rht_signs`); L is zero-padded to a multiple of ``size``
    (zeros add nothing to a dot product).  Orthonormal: applied to both GEMM operands it cancels."""
    R, L = t.shape
    Lp = -(-L // size) * size
    if Lp != L:
        t = np.concatenate([t, np.zeros((R, Lp - L))], axis=1)
    return block_hadamard(t * np.tile(rht_signs(size, seed), Lp // size), size, axis=-1)


def quantize_operand(t: np.ndarray, tq: TensorQuant, seed: int, history: list | None = None):
    """Quantise an (R, L) operand along L per ``tq`` (float64 values out)."""
    if tq.fmt is None:
        return t
    kw = dict(rounding=tq.rounding, seed=seed if tq.stochastic else None, sr_bits=tq.sr_bits)
    if tq.block == "2d":
        return np.asarray(lf.quantize(t, tq.tile_format(), **kw), np.float64)
    if tq.scaling == "delayed":
        amax = float(np.max(np.abs(t))) if t.size else 0.0
        ref = max(history) if history else amax
        history.append(amax)
        del history[:-tq.amax_history]
        scale = float(tq.fmt.max) / ref if ref > 0 else 1.0
        return np.asarray(lf.quantize(t * scale, tq.fmt, overflow="saturate", **kw),
                          np.float64) / scale
    return np.asarray(lf.quantize(t, tq.fmt, axis=-1, **kw), np.float64)


def clipped_mask(x: np.ndarray, xq: np.ndarray, tq: TensorQuant) -> np.ndarray:
    """True where ``x`` was not clipped: ``|x| <= top * (1 + g / 2)``, with ``top`` the largest
    magnitude the element's block quantised to and ``g`` the element format's relative grid gap
    at its top (``2**-mbits`` for floats, ``1 / qmax`` for INT), i.e. the rounding of the block
    maximum itself is not clipping; saturation is."""
    fmt = tq.fmt
    if fmt is None:
        return np.ones(x.shape, bool)
    elem = fmt.element if fmt.kind == "block" else fmt
    g = 2.0 ** -int(elem.mbits) if elem.kind == "float" else 1.0 / float(elem.qmax)
    ax, aq = np.abs(x), np.abs(xq)
    bs = fmt.block_size if fmt.kind == "block" else None
    if bs is None or tq.block == "2d":
        top = aq.max()  # per tensor (2-D tiles: conservative, the tensor maximum)
    elif bs == -1:
        top = aq.max(axis=-1, keepdims=True)
    else:
        R, L = x.shape
        Lp = -(-L // bs) * bs
        pad = np.zeros((R, Lp))
        pad[:, :L] = aq
        top = np.repeat(pad.reshape(R, Lp // bs, bs).max(-1), bs, axis=1)[:, :L]
    return ax <= top * (1.0 + 0.5 * g)


def _seed(base: int, layer: str, step: int, gemm: str, operand: str) -> int:
    return zlib.crc32(f"{base}|{layer}|{step}|{gemm}|{operand}".encode())


@dataclass
class LayerState:
    """Per-layer mutable state: step counter, amax histories, optional operand capture."""

    name: str
    config: TrainConfig
    step: int = 0
    histories: dict = field(default_factory=dict)
    capture: dict | None = None

    def quant(self, gemm: str, operand: str, t: np.ndarray, tq: TensorQuant) -> np.ndarray:
        return quantize_operand(t, tq, _seed(self.config.seed, self.name, self.step, gemm,
                                             operand),
                                self.histories.setdefault((gemm, operand), []))

    def run(self, gemm: str, a: np.ndarray, b: np.ndarray, quantized: dict | None = None,
            values: bool = False):
        """One GEMM ``a @ b.T`` per its spec; ``quantized`` may hold an operand already
        quantised (``{"b": values}``).  Returns (C, a_q, b_q); the quantised operand values are
        None unless ``values`` or a capture asks for them (or the operand was pre-quantised).

        With an accumulator model, an operand that lowbit.sim quantises itself (RNE, 1-D blocks
        along the reduction axis, current scaling) goes to :func:`lowbit.sim.qmatmul` in its
        format, so block formats take the OCP MX block-dot path exactly as in inference;
        other operands (stochastic rounding, 2-D tiles, delayed scaling) are quantised here
        and multiplied as values (element path)."""
        spec: GemmSpec = getattr(self.config, gemm)
        quantized = quantized or {}
        if spec.rht:
            rs = _seed(self.config.seed, "rht", 0, gemm, "signs")  # one sign vector per GEMM kind
            a, b = apply_rht(a, spec.rht, rs), apply_rht(b, spec.rht, rs)
        want = values or self.capture is not None
        ops, fmts = {}, {}
        for key, t, tq in (("a", a, spec.a), ("b", b, spec.b)):
            native = spec.accum is not None and _sim_native(tq) and key not in quantized
            if native:
                ops[key], fmts[key] = t, tq.fmt
                quantized[key] = (np.asarray(lf.quantize(t, tq.fmt, axis=-1), np.float64)
                                  if want else None)
            else:
                if key not in quantized:
                    quantized[key] = self.quant(gemm, key, t, tq)
                ops[key], fmts[key] = quantized[key], None
        if spec.accum is None:
            c = ops["a"] @ ops["b"].T
        else:
            c = qmatmul(ops["a"], ops["b"].T,
                        QuantConfig(weight=fmts["b"], act=fmts["a"], accum=spec.accum))
        if self.capture is not None:
            self.capture[gemm] = {"a": a, "b": b, "a_q": quantized["a"], "b_q": quantized["b"],
                                  "out": c}
        return c, quantized["a"], quantized["b"]


def _sim_native(tq: TensorQuant) -> bool:
    return (tq.fmt is not None and tq.block == "1d" and tq.scaling == "current"
            and lf.rounding_mode(tq.rounding) == "rne")


class QLinearFunction(torch.autograd.Function):
    """``y = x2d @ w.T + bias`` with the three GEMMs of ``state.config`` (module docstring)."""

    @staticmethod
    def forward(ctx, x2d, w, bias, state: LayerState):
        cfg = state.config
        x, wn = as_numpy(x2d), as_numpy(w)
        y, xq, wq = state.run("fprop", x, wn, values=True)
        ctx.state = state
        ctx.save_for_backward(x2d, w)
        ctx.wq = wq
        ctx.masks = None
        if cfg.estimator == "clipped":
            ctx.masks = (clipped_mask(x, xq, cfg.fprop.a), clipped_mask(wn, wq, cfg.fprop.b))
        ctx.has_bias = bias is not None
        if bias is not None:
            y = y + as_numpy(bias)
        return from_numpy(y, x2d)

    @staticmethod
    def backward(ctx, dy):
        state: LayerState = ctx.state
        cfg = state.config
        x2d, w = ctx.saved_tensors
        g = as_numpy(dy)
        # dgrad: dX = dY W, reduction over M; a 2-D-tiled weight reuses the fprop quantisation
        reuse = (cfg.dgrad.b == cfg.fprop.b and cfg.fprop.b.block == "2d" and cfg.dgrad.rht is None
                 and not cfg.fprop.b.stochastic)
        pre = {"b": ctx.wq.T} if reuse else None
        dx, _, _ = state.run("dgrad", g, as_numpy(w).T, pre)
        dw, _, _ = state.run("wgrad", g.T, as_numpy(x2d).T)
        if ctx.masks is not None:
            dx, dw = dx * ctx.masks[0], dw * ctx.masks[1]
        state.step += 1
        db = from_numpy(g.sum(0), dy) if ctx.has_bias else None
        return from_numpy(dx, x2d), from_numpy(dw, w), db, None


class LSQ(nn.Module):
    """Learned step size quantiser (Esser et al. 2020) for a signed INT format."""

    def __init__(self, fmt):
        super().__init__()
        self.qn, self.qp = float(fmt.qmin), float(fmt.qmax)
        self.step = nn.Parameter(torch.tensor(0.0))
        self.initialised = False

    def forward(self, x):
        if not self.initialised:
            with torch.no_grad():
                self.step.fill_(max(float(2 * x.abs().mean() / self.qp ** 0.5), 1e-8))
            self.initialised = True
        g = 1.0 / (x.numel() * self.qp) ** 0.5
        sg = self.step * g
        # value exactly ``step`` (sg - sg == 0), gradient scaled by g (LSQ's step-gradient scale)
        s = (sg - sg.detach()) + self.step.detach()
        v = torch.clamp(x / s, self.qn, self.qp)
        # value exactly round(v) * s (round(v) - v is exact, so v + it == round(v)); STE gradient
        return (v + (torch.round(v) - v).detach()) * s


class QLinear(nn.Module):
    """``nn.Linear`` replacement whose GEMMs follow a :class:`TrainConfig` (shares the original
    weight / bias Parameters)."""

    def __init__(self, linear: nn.Linear, config: TrainConfig, name: str = ""):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.state = LayerState(name, config)
        self.lsq = None
        if config.estimator == "lsq":
            self.lsq = nn.ModuleList(LSQ(t.fmt) for t in (config.fprop.a, config.fprop.b))
            fp = dataclasses.replace(config.fprop, a=TensorQuant(), b=TensorQuant())
            self.state.config = dataclasses.replace(config, fprop=fp)

    def forward(self, x):
        lead = x.shape[:-1]
        x2d, w = x.reshape(-1, self.in_features), self.weight
        if self.lsq is not None:
            x2d, w = self.lsq[0](x2d), self.lsq[1](w)
        y = QLinearFunction.apply(x2d, w, self.bias, self.state)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, name={self.state.name!r}"


class QConv2d(nn.Module):
    """``nn.Conv2d`` replacement: patches in (kh, kw, c) order (channels fastest, as
    :func:`lowbit.sim.qconv2d`) times the (O, kh*kw*C/groups) weight through
    :class:`QLinearFunction`, one call per group."""

    def __init__(self, conv: nn.Conv2d, config: TrainConfig, name: str = ""):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError(f"layer {name!r}: only explicit zero padding is supported")
        self.weight, self.bias = conv.weight, conv.bias
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups = conv.groups
        self.states = [LayerState(f"{name}.g{g}" if conv.groups > 1 else name, config)
                       for g in range(conv.groups)]

    def forward(self, x):
        N, C, H, W = x.shape
        O, Cg, KH, KW = self.weight.shape
        og = O // self.groups
        outs = []
        for g, st in enumerate(self.states):
            xg = x[:, g * Cg:(g + 1) * Cg]
            u = F.unfold(xg, (KH, KW), dilation=self.dilation, padding=self.padding,
                         stride=self.stride)  # (N, Cg*KH*KW, L), (c, kh, kw) order
            L = u.shape[-1]
            cols = u.reshape(N, Cg, KH, KW, L).permute(0, 4, 2, 3, 1).reshape(N * L, -1)
            wg = self.weight[g * og:(g + 1) * og].permute(0, 2, 3, 1).reshape(og, -1)
            bg = None if self.bias is None else self.bias[g * og:(g + 1) * og]
            outs.append(QLinearFunction.apply(cols, wg, bg, st).reshape(N, L, og))
        y = torch.cat(outs, dim=-1).transpose(1, 2)
        OH = (H + 2 * self.padding[0] - self.dilation[0] * (KH - 1) - 1) // self.stride[0] + 1
        return y.reshape(N, O, OH, -1)
