"""Pieces shared by the workloads of user models (:class:`lowbit.sim.torch.TorchWorkload`,
:class:`~lowbit.sim.workloads.onnx_model.OnnxWorkload`): standard output metrics and the
layer name of a weight parameter."""

from __future__ import annotations

import numpy as np

from ..fidelity import (
    accuracy_metric,
    agreement_metric,
    cosine_metric,
    kl_metric,
    perplexity_metric,
    sqnr_metric,
)

# metric name -> higher is better
METRICS = {"top1": True, "mse": False, "cosine": True, "perplexity": False}
IGNORE_INDEX = -100
_SUFFIXES = (".weight", "_weight")


def weight_layer_name(param_name: str) -> str:
    """Layer name of a weight parameter / initialiser: ``fc1.weight`` -> ``fc1``,
    ``attn.in_proj_weight`` -> ``attn.in_proj`` (anything else unchanged)."""
    for s in _SUFFIXES:
        if param_name.endswith(s) and len(param_name) > len(s):
            return param_name[: -len(s)]
    return param_name


def output_metric(metric: str, out: np.ndarray, ref_out: np.ndarray, targets=None) -> dict:
    """``{"metric": value, ...}`` of model outputs ``out`` (float64, batch first).

    top1: mean(argmax(out, -1) == targets) and ``agreement`` with argmax(ref_out); mse: mean
    squared error vs targets (vs ``ref_out`` without targets); cosine: mean over samples of
    the cosine similarity of the flattened output with ``ref_out`` (and ``min_cosine``);
    perplexity: exp(mean token cross-entropy) of logits (..., V) vs integer targets
    (``IGNORE_INDEX`` = -100 skipped), and ``nll``.
    """
    if metric == "top1":
        if targets is None:
            raise ValueError("metric 'top1' needs targets")
        pred = out.argmax(-1)
        return {"metric": float(np.mean(pred == np.asarray(targets).reshape(pred.shape))),
                "agreement": float(np.mean(pred == ref_out.argmax(-1))), "n_eval": int(pred.size)}
    if metric == "mse":
        tgt = ref_out if targets is None else np.asarray(targets).reshape(out.shape)
        return {"metric": float(np.mean((out - tgt) ** 2)), "n_eval": int(len(out))}
    if metric == "cosine":
        a, b = out.reshape(len(out), -1), ref_out.reshape(len(ref_out), -1)
        cos = np.sum(a * b, 1) / np.maximum(
            np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        return {"metric": float(np.mean(cos)), "min_cosine": float(np.min(cos)),
                "n_eval": int(len(cos))}
    if metric == "perplexity":
        if targets is None:
            raise ValueError("metric 'perplexity' needs integer targets")
        logits = out.reshape(-1, out.shape[-1])
        t = np.asarray(targets).reshape(-1)
        keep = t != IGNORE_INDEX
        z = logits[keep] - logits[keep].max(1, keepdims=True)
        nll = np.log(np.exp(z).sum(1)) - z[np.arange(int(keep.sum())), t[keep]]
        return {"metric": float(np.exp(nll.mean())), "nll": float(nll.mean()),
                "n_eval": int(keep.sum())}
    raise ValueError(f"metric={metric!r}; allowed: {', '.join(METRICS)}")


def output_fidelity(metric: str, out: np.ndarray, ref_out: np.ndarray, targets=None) -> dict:
    """``{name: lowbit.sim.fidelity.SampleMetric}`` (one bootstrap sample = one evaluation
    sample): the task metric first where it is per-sample (top1, cosine, perplexity without
    ignored tokens), then fidelity to the float output: KL and top-1 agreement for logits
    (top1, perplexity), and the output SQNR."""
    n = len(out)
    res: dict = {}
    if metric == "top1" and targets is not None:
        res["top1"] = accuracy_metric(out, np.asarray(targets).reshape(out.shape[:-1]))
    elif metric == "cosine":
        res["cosine"] = cosine_metric(out.reshape(n, -1), ref_out.reshape(n, -1))
    elif metric == "perplexity" and targets is not None:
        t = np.asarray(targets).reshape(out.shape[:-1])
        if not np.any(t == IGNORE_INDEX):
            res["perplexity"] = perplexity_metric(out, t)
    if metric in ("top1", "perplexity"):
        res["kl"] = kl_metric(ref_out, out)
        res["agreement"] = agreement_metric(ref_out, out)
    res["sqnr"] = sqnr_metric(ref_out.reshape(n, -1), out.reshape(n, -1))
    return res
