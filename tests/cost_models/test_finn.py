"""FINN MVAU resource formulas: regression on worked values (toolchain.md §2.1)."""

import math

import pytest

from lowbit.cost_models.finn import (
    finn_acc_bits,
    finn_mult_luts,
    finn_mvau_bram18,
    finn_mvau_cycles,
    finn_mvau_dsps,
    finn_mvau_luts,
    finn_mvau_uram,
)


@pytest.mark.parametrize("w,a,luts", [(2, 2, 4), (3, 3, 6), (4, 4, 24), (5, 5, 30), (6, 6, 36),
                                      (8, 8, 80)])
def test_mult_luts_match_finn_column(w, a, luts):
    # "FINN LUT formula (W+A based)" column of the Yosys probe table in toolchain.md
    assert finn_mult_luts(w, a) == luts


def test_acc_bits_colbert_bound():
    # alpha = log2(64) + 4 + 4 - 1 - 1 = 12 -> ceil(12 + log2(1 + 2^-12) + 1) = 14
    assert finn_acc_bits(4, 4, 64, signed_input=True) == 14
    # unsigned input: alpha = 13 -> 15; capped by the accumulator dtype
    assert finn_acc_bits(4, 4, 64, signed_input=False) == 15
    assert finn_acc_bits(8, 8, 2 ** 20, signed_input=True, acc_dtype_bits=32) == 32


def test_mvau_luts_hand_worked():
    # P=2, Q=4, W=A=4, MW=64, MH=16, no activation:
    # mult = 4*(2*2-1)*8 = 96, addertree = 8*7 = 56, acc = 14
    # LUT = int(300 + 1.1*2*(96+56+14)) = int(665.2) = 665
    assert finn_mvau_luts(4, 4, 2, 4, 64, 16) == 665
    # res_type dsp drops the multiplier: int(300 + 2.2*70) = 454
    assert finn_mvau_luts(4, 4, 2, 4, 64, 16, res_type="dsp") == 454
    # 2-bit output thresholds: thr = comp = 3*14*ceil(8/64) = 42 -> int(300 + 2.2*250) = 850
    assert finn_mvau_luts(4, 4, 2, 4, 64, 16, out_bits=2) == 850
    # weights in LUTRAM: c2 = P*Q*W*ceil(WMEM/64) = 2*4*4*ceil(128/64) = 64
    assert finn_mvau_luts(4, 4, 2, 4, 64, 16, weights_in_lutram=True) == 665 + 64


def test_mvau_dsp_bram_cycles():
    assert finn_mvau_dsps(4, 4, 2, 4) == 2 * 4 * math.ceil(8 / 48)
    assert finn_mvau_dsps(4, 4, 2, 4, variant="rtl", dsp="dsp48") == 4   # ceil(2/4)*4
    assert finn_mvau_dsps(4, 4, 2, 4, variant="rtl", dsp="dsp58") == 4   # 2*ceil(4/3)
    assert finn_mvau_bram18(4, 2, 4, 64, 16) == 1      # w = 32, omega = 128 <= 512
    assert finn_mvau_bram18(1, 1, 1, 1024, 32) == 2    # width 1: ceil(32768/16384)
    assert finn_mvau_uram(4, 2, 4, 64, 16) == 1
    assert finn_mvau_cycles(64, 16, 2, 4, (10,)) == 8 * 16 * 10


def test_bad_input():
    with pytest.raises(ValueError, match="res_type"):
        finn_mvau_luts(4, 4, 2, 4, 64, 16, res_type="bram")
    with pytest.raises(ValueError, match="SIMD"):
        finn_mvau_luts(4, 4, 2, 3, 64, 16)
