"""Named low-precision training recipes and :func:`train_recipe` (module swap).

``train_recipe(model, recipe)`` replaces every ``nn.Linear`` / ``nn.Conv2d`` of ``model`` (in
place; build the optimizer afterwards or before: the Parameters are the same objects) by
:class:`~lowbit.sim.torch.training.QLinear` / :class:`~lowbit.sim.torch.training.QConv2d` with
the recipe's :class:`~lowbit.sim.torch.training.TrainConfig`.

Recipes (operands: fprop X, W; dgrad dY, W^T; wgrad dY^T, X^T):

* ``"bf16"`` - every GEMM operand rounded to bfloat16 (RNE): the high-precision baseline.
* ``"nvfp4-pretrain"`` - NVIDIA, "Pretraining Large Language Models with NVFP4" (2025): NVFP4
  (E2M1, 16-element blocks, E4M3 block scales, FP32 tensor scale) for all three GEMMs; weights
  in 2-D 16x16 blocks (so fprop and dgrad see the same quantised W); activations and gradients
  in 1-D 16-blocks along the reduction axis; stochastic rounding on the gradients dY (dgrad and
  wgrad), round-to-nearest-even elsewhere; a 16-point random Hadamard transform on both wgrad
  inputs only; a few linear layers kept in BF16 (the paper: ~16% of them, the final blocks):
  here the last ``ceil(0.16 * n)`` layers in execution order unless ``keep_bf16`` names others.
* ``"nvfp4-rtn"`` - the same formats with none of the recipe: 1-D blocks everywhere, RNE
  everywhere, no RHT, no BF16 layers (the ablation the paper compares against).
* ``"mxfp8"`` - OCP MXFP8 (E4M3 elements, 32-element blocks, E8M0 scales) for every operand
  of every GEMM, 1-D blocks along the reduction axis, RNE (NVIDIA's MXFP8 pretraining recipe
  uses E4M3 for all tensors).
* ``"fp8-delayed-scaling"`` - Transformer Engine's FP8 recipe: E4M3 for X and W, E5M2 for the
  gradients ("hybrid"), per-tensor scales from the amax history of earlier steps (history 16;
  the first step uses the current amax), saturating.
* ``"int8-qat"`` - quantisation-aware training (Jacob et al. 2018): INT8 weights per output
  channel and INT8 activations per tensor in fprop, backward GEMMs in float, STE (or
  ``estimator="lsq"``: learned step sizes).
* a dict ``{"fprop": {"a": {...TensorQuant kwargs}, "b": {...}, "rht": r, "accum": acc},
  "dgrad": ..., "wgrad": ..., "estimator": ..., "keep_bf16": [...]}`` or a TrainConfig.
"""

from __future__ import annotations

import fnmatch
import math

import torch.nn as nn

from .training import GemmSpec, QConv2d, QLinear, TensorQuant, TrainConfig

RECIPES = ("bf16", "nvfp4-pretrain", "nvfp4-rtn", "mxfp8", "fp8-delayed-scaling", "int8-qat")
BF16_FRACTION = 0.16  # share of linear layers the NVFP4 recipe keeps in BF16


def _same(tq: TensorQuant, accum=None) -> TrainConfig:
    g = GemmSpec(tq, tq, accum=accum)
    return TrainConfig(g, g, g)


def recipe_config(recipe: str, accum=None, estimator: str | None = None, seed: int = 0):
    """(TrainConfig of the quantised layers, TrainConfig of the BF16 layers or None, BF16
    fraction) of a named recipe."""
    bf16 = _same(TensorQuant("bf16"), accum)
    if recipe == "bf16":
        cfg, keep = bf16, 0.0
    elif recipe in ("nvfp4-pretrain", "nvfp4-rtn"):
        full = recipe == "nvfp4-pretrain"
        x = TensorQuant("nvfp4")
        w = TensorQuant("nvfp4", block="2d" if full else "1d")
        g = TensorQuant("nvfp4", rounding="stochastic" if full else "rne")
        cfg = TrainConfig(GemmSpec(x, w, accum=accum), GemmSpec(g, w, accum=accum),
                          GemmSpec(g, x, rht=16 if full else None, accum=accum))
        keep = BF16_FRACTION if full else 0.0
    elif recipe == "mxfp8":
        cfg, keep = _same(TensorQuant("mxfp8_e4m3"), accum), 0.0
    elif recipe == "fp8-delayed-scaling":
        e4, e5 = (TensorQuant(f, scaling="delayed") for f in ("fp8_e4m3", "fp8_e5m2"))
        cfg = TrainConfig(GemmSpec(e4, e4, accum=accum), GemmSpec(e5, e4, accum=accum),
                          GemmSpec(e5, e4, accum=accum))
        keep = 0.0
    elif recipe == "int8-qat":
        cfg = TrainConfig(GemmSpec(TensorQuant("int8_pt"), TensorQuant("int8_pc"), accum=accum),
                          GemmSpec(), GemmSpec())
        if estimator == "lsq":
            cfg = TrainConfig(GemmSpec(TensorQuant("int8"), TensorQuant("int8"), accum=accum),
                              GemmSpec(), GemmSpec(), estimator="lsq")
        keep = 0.0
    else:
        raise ValueError(f"recipe={recipe!r}; allowed: {', '.join(RECIPES)}, a dict or a "
                         "TrainConfig")
    if estimator is not None and estimator != cfg.estimator:
        cfg = TrainConfig(cfg.fprop, cfg.dgrad, cfg.wgrad, estimator=estimator, seed=seed)
    elif seed:
        cfg = TrainConfig(cfg.fprop, cfg.dgrad, cfg.wgrad, estimator=cfg.estimator, seed=seed)
    return cfg, (bf16 if keep else None), keep


def _from_dict(d: dict, seed: int) -> TrainConfig:
    def gemm(g):
        g = dict(g or {})
        return GemmSpec(TensorQuant(**g.pop("a", {})), TensorQuant(**g.pop("b", {})), **g)

    unknown = set(d) - {"fprop", "dgrad", "wgrad", "estimator", "keep_bf16"}
    if unknown:
        raise ValueError(f"recipe dict: unknown key(s) {sorted(unknown)}; allowed: fprop, dgrad, "
                         "wgrad, estimator, keep_bf16")
    return TrainConfig(gemm(d.get("fprop")), gemm(d.get("dgrad")), gemm(d.get("wgrad")),
                       estimator=d.get("estimator", "ste"), seed=seed)


def quantizable_layers(model: nn.Module) -> list[str]:
    """Qualified names of the nn.Linear / nn.Conv2d modules of ``model`` (module order)."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def train_recipe(model: nn.Module, recipe, *, keep_bf16=None, skip=(), accum=None,
                 estimator: str | None = None, seed: int = 0) -> nn.Module:
    """Swap ``model``'s Linear / Conv2d layers for quantised-training layers (in place).

    recipe: a name in :data:`RECIPES`, a dict (module docstring) or a TrainConfig.
    keep_bf16: fnmatch patterns of layers kept in BF16 (default: the recipe's choice).
    skip: fnmatch patterns of layers left untouched (full float, e.g. an output head).
    accum: accumulator model of every GEMM (None: float64 BLAS on the quantised values).
    Returns ``model``; ``model.lowbit_recipe`` maps each converted layer to its config.
    """
    names = [n for n in quantizable_layers(model)
             if not any(fnmatch.fnmatchcase(n, p) for p in skip)]
    bf16 = frac = None
    if isinstance(recipe, TrainConfig):
        cfg, frac = recipe, 0.0
    elif isinstance(recipe, dict):
        cfg, frac = _from_dict(recipe, seed), 0.0
        keep_bf16 = recipe.get("keep_bf16", keep_bf16)
    else:
        cfg, bf16, frac = recipe_config(str(recipe), accum, estimator, seed)
    if keep_bf16 is not None:
        bf16 = bf16 or recipe_config("bf16", accum)[0]
        kept = {n for n in names if any(fnmatch.fnmatchcase(n, p) for p in keep_bf16)}
    else:
        kept = set(names[len(names) - math.ceil(frac * len(names)):]) if frac else set()
    mods = dict(model.named_modules())
    chosen = {}
    for n in names:
        c = bf16 if n in kept else cfg
        m = mods[n]
        new = QLinear(m, c, n) if isinstance(m, nn.Linear) else QConv2d(m, c, n)
        parent, _, attr = n.rpartition(".")
        setattr(mods[parent] if parent else model, attr, new)
        chosen[n] = "bf16" if n in kept else (recipe if isinstance(recipe, str) else "custom")
    model.lowbit_recipe = chosen
    return model
