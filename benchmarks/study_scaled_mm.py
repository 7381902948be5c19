"""Study: which accumulator model reproduces ``torch._scaled_mm`` (FP8 E4M3 GEMM, FP32 output)?

``python benchmarks/study_scaled_mm.py [--json PATH]`` (needs torch): on the CPU always (torch's
CPU implementation), and on the GPU when it is Hopper (sm_90) or newer. Not part of the library
(a study of one external implementation); ``lowbit kernels validate`` checks the kernels.

The operands are E4M3 values, so every product is exact and only the order / precision of the
accumulation decides the FP32 result. Candidate models:

- ``lowbit.sim`` accumulators (through :func:`lowbit.sim.gemm.qmatmul`, operands unquantized):
  ``exact``, ``fp32`` (sequential FMA chain), ``fp32_pairwise``, ``fp32_chunk<k>`` (tensor-core
  style: k products summed exactly, then one rounding into the accumulator) and reduced-width
  accumulators ``e8m<M>_chunk<k>`` (e.g. Hopper's reported ~14-bit FP8 accumulation);
- SIMD-lane models written here for CPU BLAS: ``lanes<L>[_seq|_tree][_kc<P>]``: L interleaved
  FP32 partial sums (lane j takes k = j mod L, one FMA rounding per add), combined by a pairwise
  tree or sequentially, optionally per K-panel of P with panel results added to C in order.
  (Each add is rounded as fp32(float64(acc + p)): exact for these products unless the exponent
  gap exceeds 29 bits, where a double rounding is possible but immaterial here.)

:func:`study` returns, per model, the fraction of outputs that match bit for bit and the max
error in FP32 ulps; :func:`best` picks the model(s) with the most exact matches.
"""
from __future__ import annotations

import argparse
import json
import warnings

import ml_dtypes
import numpy as np

from lowbit.sim.gemm import qmatmul


def _lanes(P, L, tree, kc):
    """P: exact products (M, N, K) float64 -> float32 (M, N) under the lanes model."""
    M, N, K = P.shape
    panels = [(0, K)] if kc is None else [(k0, min(k0 + kc, K)) for k0 in range(0, K, kc)]
    C = np.zeros((M, N), np.float32)
    for k0, k1 in panels:
        acc = np.zeros((M, N, L), np.float32)
        for k in range(k0, k1, L):
            blk = P[:, :, k:min(k + L, k1)]
            w = blk.shape[2]
            acc[:, :, :w] = (acc[:, :, :w].astype(np.float64) + blk).astype(np.float32)
        if tree:
            while acc.shape[2] > 1:
                if acc.shape[2] % 2:
                    acc = np.concatenate([acc, np.zeros((M, N, 1), np.float32)], axis=2)
                acc = (acc[:, :, 0::2].astype(np.float64) + acc[:, :, 1::2]).astype(np.float32)
            r = acc[:, :, 0]
        else:
            r = np.zeros((M, N), np.float32)
            for j in range(L):
                r = (r.astype(np.float64) + acc[:, :, j]).astype(np.float32)
        C = (C.astype(np.float64) + r).astype(np.float32) if kc is not None else r
    return C


def lane_models():
    out = {}
    for L in (1, 4, 8, 16, 32, 64):
        for tree in (True, False):
            if L == 1 and not tree:
                continue
            for kc in (None, 64, 128, 192, 256, 384, 512):
                name = f"lanes{L}" + ("" if L == 1 else ("_tree" if tree else "_seq")) + \
                       ("" if kc is None else f"_kc{kc}")
                out[name] = (L, tree, kc)
    return out


def sim_models(gpu=False):
    ms = ["exact", "fp32", "fp32_pairwise"] + [f"fp32_chunk{k}" for k in (2, 4, 8, 16, 32, 64)]
    if gpu:
        ms += [f"e8m{m}_chunk{k}" for m in (13, 14, 16, 18, 20, 22) for k in (4, 8, 16, 32)]
        ms += [f"e8m{m}" for m in (13, 14, 16, 18, 20, 22)]
    return ms


def make_operands(M=32, N=32, K=1024, seed=0, spread=4):
    """E4M3-representable operands with a spread of magnitudes (cancellation included)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, K)) * np.exp2(rng.integers(-spread, spread + 1, (M, K)))
    b = rng.standard_normal((N, K)) * np.exp2(rng.integers(-spread, spread + 1, (N, K)))
    q = lambda x: np.clip(x, -448, 448).astype(np.float32).astype(  # noqa: E731
        ml_dtypes.float8_e4m3fn).astype(np.float64)
    return q(a), q(b)


def scaled_mm(a, b, device="cpu"):
    """torch._scaled_mm(a (M,K), b^T (K,N) column-major), unit scales, float32 out."""
    import torch
    ta = torch.from_numpy(a.astype(np.float32)).to(device).to(torch.float8_e4m3fn)
    tb = torch.from_numpy(b.astype(np.float32)).to(device).to(torch.float8_e4m3fn)
    one = torch.tensor(1.0, device=device)
    out = torch._scaled_mm(ta, tb.t(), scale_a=one, scale_b=one, out_dtype=torch.float32)
    return out.cpu().numpy()


def _ulps(x, ref):
    x = x.astype(np.float32)
    ref = ref.astype(np.float32)
    d = np.abs(x.astype(np.float64) - ref.astype(np.float64))
    ulp = np.spacing(np.abs(ref)).astype(np.float64)
    return float(np.max(d / ulp)) if d.size else 0.0


def study(a, b, target, gpu=False, lanes=True):
    """{model: (fraction of bit-exact outputs, max ulp error)} for target = the measured GEMM."""
    res = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in sim_models(gpu):
            try:
                r = qmatmul(a, b.T, m).astype(np.float32)
            except ValueError:
                continue
            res[m] = (float(np.mean(r.view(np.uint32) == target.view(np.uint32))), _ulps(r, target))
    if lanes:
        P = a[:, None, :] * b[None, :, :]
        for name, (L, tree, kc) in lane_models().items():
            r = _lanes(P, L, tree, kc)
            res[name] = (float(np.mean(r.view(np.uint32) == target.view(np.uint32))),
                         _ulps(r, target))
    return res


def best(res):
    top = max(v[0] for v in res.values())
    return top, sorted(k for k, v in res.items() if v[0] == top)


def run(device, gpu, K):
    """Print and return one study: M = N = 32 operands, ``K`` deep, on ``device``."""
    import torch
    a, b = make_operands(32, 32, K)
    t = scaled_mm(a, b, device)
    res = study(a, b, t, gpu=gpu, lanes=not gpu)
    top, models = best(res)
    same_as_mm = None
    if device == "cpu":
        ta = torch.from_numpy(a.astype(np.float32))
        tb = torch.from_numpy(b.astype(np.float32))
        same_as_mm = bool(np.array_equal((ta @ tb.t()).numpy().view(np.uint32), t.view(np.uint32)))
    print(f"  torch._scaled_mm on {device} (M=N=32, K={K}): best model(s) {models} match "
          f"{100 * top:.1f}% of outputs bit for bit")
    for name in ("exact", "fp32", "fp32_pairwise", "fp32_chunk32"):
        if name in res:
            print(f"    {name:<16} {100 * res[name][0]:5.1f}% exact, max err {res[name][1]:.0f} ulp")
    if same_as_mm is not None:
        print(f"    identical to torch.mm of the FP32-upcast operands: {same_as_mm}")
    return {"device": device, "K": K, "best": models, "best_match": top,
            "same_as_fp32_mm": same_as_mm,
            "models": {k: {"match": v[0], "max_ulp": v[1]} for k, v in res.items()}}


def main(argv=None):
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)
    print("accumulation study (which accumulator model reproduces torch._scaled_mm):")
    out = [run("cpu", False, K) for K in (256, 1024)]
    if torch.cuda.is_available():
        cap = torch.cuda.get_device_capability(0)
        if cap[0] >= 9:
            out += [run("cuda", True, K) for K in (256, 4096)]
        else:
            print(f"note: GPU study skipped: compute capability {cap} < 9.0 (Hopper)")
    else:
        print("note: GPU study skipped: no CUDA GPU")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
