"""FINN's published resource formulas for integer MVAU layers, reproduced exactly.

Source: Xilinx/finn ``src/finn/custom_op/fpgadataflow/matrixvectoractivation.py``
(``lut_estimation``, ``dsp_estimation``, ``bram_estimation``, ``uram_estimation``,
``get_exp_cycles``), formulas from FINN-R (Blott et al., ACM TRETS 2018); accumulator
bound from Colbert et al., arXiv 2301.13376. Notation: P = PE, Q = SIMD, W = weight bits,
A = activation bits, MW x MH = weight matrix (MW = reduction length).

    LUT  = int(c0 + c1 * P * (mult + addertree + acc + thr + comp) + c2),  c0 = 300, c1 = 1.1
    mult = Q * (2*ceil((W+A)/6) - 1) * (W+A)         (0 when res_type == "dsp")
    addertree = (W+A) * (2Q - 1)
    alpha = log2(MW) + W + A - 1 - signed(input);  acc = min(acc_dtype_bits,
            ceil(alpha + log2(1 + 2^-alpha) + 1))
    thr  = (2^B - 1) * acc * ceil(TMEM/64),  comp = (2^B - 1) * acc  (B = output bits; only
           with thresholds in distributed RAM, i.e. an activation and ram_style_thresholds
           "distributed")
    c2   = P*Q*W*ceil(WMEM/64) for weights in LUTRAM, WMEM = MW*MH/(P*Q), TMEM = MH/P
    DSP (HLS)  = P * Q * ceil((W+A)/48)
    cycles     = (MH/P) * (MW/Q) * prod(num_input_vectors)

FINN covers integer datapaths only (no minifloat / MX), and the formula under-predicts
Yosys' LUT counts at 8x8 bits (see the calibration report): it is reproduced as a
published reference model, not as our fitted model.
"""

from __future__ import annotations

import math

__all__ = ["finn_acc_bits", "finn_mvau_luts", "finn_mult_luts", "finn_mvau_dsps",
           "finn_mvau_bram18", "finn_mvau_uram", "finn_mvau_cycles"]


def finn_acc_bits(W: int, A: int, MW: int, signed_input: bool, acc_dtype_bits: int = 32) -> int:
    """Minimal accumulator width (Colbert et al. bound, capped at the accumulator dtype)."""
    alpha = math.log(MW, 2) + W + A - 1 - int(bool(signed_input))
    return int(min(acc_dtype_bits, math.ceil(alpha + math.log(1 + 2 ** (-alpha), 2) + 1)))


def finn_mult_luts(W: int, A: int, Q: int = 1) -> int:
    """LUTs of Q LUT-based W x A multipliers: Q*(2*ceil((W+A)/6)-1)*(W+A)."""
    return Q * (2 * math.ceil((W + A) / 6) - 1) * (W + A)


def finn_mvau_luts(W: int, A: int, P: int, Q: int, MW: int, MH: int, *,
                   signed_input: bool = True, acc_dtype_bits: int = 32,
                   res_type: str = "lut", out_bits: int | None = None,
                   thresholds_distributed: bool = True, weights_in_lutram: bool = False) -> int:
    """FINN MVAU (HLS) LUT estimate; ``out_bits`` None means noActivation=1 (no thresholds)."""
    if res_type not in ("lut", "dsp"):
        raise ValueError(f"res_type: unknown {res_type!r}; allowed: lut, dsp")
    if MW % Q or MH % P:
        raise ValueError(f"MW % SIMD and MH % PE must be 0 (got MW={MW}, Q={Q}, MH={MH}, P={P})")
    c0, c1, c2 = 300, 1.1, 0
    wmem = MW * MH // (P * Q)
    tmem = MH // P
    if weights_in_lutram:
        c2 = (P * Q * W) * math.ceil(wmem / 64)
    mult = 0 if res_type == "dsp" else finn_mult_luts(W, A, Q)
    addertree = (W + A) * (2 * Q - 1)
    acc = finn_acc_bits(W, A, MW, signed_input, acc_dtype_bits)
    thr = comp = 0
    if out_bits is not None and thresholds_distributed:
        thr = (2 ** out_bits - 1) * acc * math.ceil(tmem / 64)
        comp = (2 ** out_bits - 1) * acc
    return int(c0 + c1 * (P * (mult + addertree + acc + thr + comp)) + c2)


def finn_mvau_dsps(W: int, A: int, P: int, Q: int, variant: str = "hls",
                   dsp: str = "dsp48") -> int:
    """DSPs: HLS P*Q*ceil((W+A)/48); RTL DSP58 P*ceil(Q/3), RTL DSP48 ceil(P/4)*Q."""
    if variant == "hls":
        return int(P * Q * math.ceil((W + A) / 48))
    if variant == "rtl":
        return int(P * math.ceil(Q / 3)) if dsp == "dsp58" else int(math.ceil(P / 4) * Q)
    raise ValueError(f"variant: unknown {variant!r}; allowed: hls, rtl")


def finn_mvau_bram18(W: int, P: int, Q: int, MW: int, MH: int) -> int:
    """RAMB18 count for the weight memory (omega = MW*MH/(Q*P) words of Q*W*P bits)."""
    omega = MW * MH / (Q * P)
    w = Q * W * P
    if w == 1:
        return math.ceil(omega / 16384)
    if w == 2:
        return math.ceil(omega / 8192)
    if w <= 4:
        return math.ceil(omega / 4096) * math.ceil(w / 4)
    if w <= 9:
        return math.ceil(omega / 2048) * math.ceil(w / 9)
    if w <= 18 or omega > 512:
        return math.ceil(omega / 1024) * math.ceil(w / 18)
    return math.ceil(omega / 512) * math.ceil(w / 36)


def finn_mvau_uram(W: int, P: int, Q: int, MW: int, MH: int) -> int:
    omega = MW * MH / (Q * P)
    return math.ceil(Q * W * P / 72) * math.ceil(omega / 4096)


def finn_mvau_cycles(MW: int, MH: int, P: int, Q: int, num_input_vectors=(1,)) -> int:
    n = 1
    for v in num_input_vectors:
        n *= int(v)
    return int(MH // P * (MW // Q) * n)
