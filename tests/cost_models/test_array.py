"""Array performance model: hand-worked cases, monotonicity, traffic bytes, bad input."""


import numpy as np
import pytest

from lowbit.cost_models.array import ArrayConfig, gemm_model, layers_to_gemm, network_model


def test_os_4x4_gemm_4x4x8_by_hand():
    # SCALE-Sim serial fill: one fold; 2R + C + T - 2 = 8 + 4 + 8 - 2 = 18 cycles; 128 MACs
    r = gemm_model(4, 8, 4, ArrayConfig(4, 4, "OS", fill="serial"))
    assert int(r["folds"]) == 1
    assert int(r["cycles"]) == 18
    assert float(r["util"]) == pytest.approx(128 / (16 * 18))
    assert float(r["map_eff"]) == 1.0
    assert int(r["sram_a_reads"]) == 32 and int(r["sram_b_reads"]) == 32
    assert int(r["sram_o_writes"]) == 16 and int(r["sram_psum_reads"]) == 0


def test_ws_and_is_folds_by_hand():
    # M=10, K=8, N=6 on 4x4.
    # WS: rows<-K (2 folds), cols<-N (2 folds), T=M=10: 4 * (8+4+10-2) = 80
    ws = gemm_model(10, 8, 6, ArrayConfig(4, 4, "WS", fill="serial"))
    assert int(ws["folds"]) == 4 and int(ws["cycles"]) == 80
    assert int(ws["sram_a_reads"]) == 10 * 8 * 2      # A restreamed per column fold
    assert int(ws["sram_b_reads"]) == 8 * 6           # weights loaded once
    assert int(ws["sram_o_writes"]) == 60 * 2         # one write per row fold
    assert int(ws["sram_psum_reads"]) == 60           # (F_r - 1) read-backs
    # IS: rows<-K (2), cols<-M (3), T=N=6: 6 * (8+4+6-2) = 96
    is_ = gemm_model(10, 8, 6, ArrayConfig(4, 4, "IS", fill="serial"))
    assert int(is_["folds"]) == 6 and int(is_["cycles"]) == 96
    assert int(is_["sram_a_reads"]) == 80 and int(is_["sram_b_reads"]) == 48 * 3
    # OS: rows<-M (3), cols<-N (2), T=K=8: 6 * (8+4+8-2) = 108
    os_ = gemm_model(10, 8, 6, ArrayConfig(4, 4, "OS", fill="serial"))
    assert int(os_["cycles"]) == 108
    # MACs identical under every dataflow
    assert int(ws["macs"]) == int(is_["macs"]) == int(os_["macs"]) == 480


def test_rtl_fill_by_hand():
    # lowbit.hw systolic RTL: OS 4x4, GEMM 4x4x8: 1 tile * (K + R + C - 1) + 1 = 16 cycles
    assert int(gemm_model(4, 8, 4, ArrayConfig(4, 4, "OS"))["cycles"]) == 16
    # WS M=10, K=8, N=6: 4 folds * (M + 2R + C - 2) + 1 = 4 * 20 + 1 = 81
    assert int(gemm_model(10, 8, 6, ArrayConfig(4, 4, "WS"))["cycles"]) == 81


def test_overlapped_fill():
    # F*max(T,R) + (R+C-2) + R = 4*10 + 6 + 4 = 50
    r = gemm_model(10, 8, 6, ArrayConfig(4, 4, "WS", fill="overlapped"))
    assert int(r["cycles"]) == 50


def test_bytes_scale_with_bits_per_element():
    cfg = ArrayConfig(4, 4, "WS")
    r8 = gemm_model(10, 8, 6, cfg, a_bits=8, b_bits=8, out_bits=8, psum_bits=32)
    r4 = gemm_model(10, 8, 6, cfg, a_bits=4.25, b_bits=4.5, out_bits=8, psum_bits=32)
    assert float(r4["sram_bytes_a"]) == pytest.approx(160 * 4.25 / 8)
    assert float(r4["sram_bytes_b"]) == pytest.approx(48 * 4.5 / 8)
    # outputs: 60 final writes at 8 bits + 60 intermediate writes + 60 reads at 32 bits
    assert float(r8["sram_bytes_o"]) == pytest.approx((60 * 8 + 60 * 32 + 60 * 32) / 8)


def test_tensor_scale_bits_counted_once():
    cfg = ArrayConfig(4, 4, "WS")
    r0 = gemm_model(10, 8, 6, cfg, a_bits=4.5, b_bits=4.5)
    r1 = gemm_model(10, 8, 6, cfg, a_bits=4.5, b_bits=4.5, a_tensor_bits=32, b_tensor_bits=32)
    assert float(r1["sram_bytes"] - r0["sram_bytes"]) == pytest.approx(8)
    assert float(r1["dram_bytes"] - r0["dram_bytes"]) == pytest.approx(8)


def test_dram_fits_vs_refetch_and_spill():
    big = ArrayConfig(4, 4, "WS", buffers=(1 << 20, 1 << 20, 1 << 20))
    tiny = ArrayConfig(4, 4, "WS", buffers=(1, 1, 1))
    rb = gemm_model(10, 8, 6, big, a_bits=8, b_bits=8, out_bits=8, psum_bits=32)
    rt = gemm_model(10, 8, 6, tiny, a_bits=8, b_bits=8, out_bits=8, psum_bits=32)
    assert float(rb["dram_bytes_a"]) == 80 and float(rb["dram_bytes_b"]) == 48
    assert float(rb["dram_bytes_o"]) == 60
    assert float(rt["dram_bytes_a"]) == 160               # refetched per column fold
    assert float(rt["dram_bytes_o"]) == pytest.approx(rt["sram_bytes_o"])  # psums spill
    assert float(rt["dram_bytes"]) > float(rb["dram_bytes"])


def test_psums_live_per_column_fold():
    """WS, 4x4 array, M=10 K=8 N=6: two row folds, two column folds. The live partial sums
    are one column fold's outputs, 10 x 4 x 4 B = 160 B (not all 10 x 6 x 4 B = 240 B): a
    200-byte output buffer holds them, a 100-byte one does not."""
    fits = ArrayConfig(4, 4, "WS", buffers=(1 << 20, 1 << 20, 200))
    spills = ArrayConfig(4, 4, "WS", buffers=(1 << 20, 1 << 20, 100))
    rf = gemm_model(10, 8, 6, fits, a_bits=8, b_bits=8, out_bits=8, psum_bits=32)
    rs = gemm_model(10, 8, 6, spills, a_bits=8, b_bits=8, out_bits=8, psum_bits=32)
    assert float(rf["dram_bytes_o"]) == 60                 # final outputs only
    # 60 final writes (8 bit) + 60 intermediate writes + 60 reads (32 bit) go to DRAM
    assert float(rs["dram_bytes_o"]) == (60 * 8 + 60 * 32 + 60 * 32) / 8


def test_monotone_in_problem_size_and_array():
    cfg = ArrayConfig(8, 8, "OS")
    ks = np.arange(1, 200)
    c = gemm_model(16, ks, 16, cfg)["cycles"]
    assert np.all(np.diff(c) >= 0)
    u = [float(gemm_model(64, 64, 64, ArrayConfig(n, n, "WS"))["util"]) for n in (4, 8, 16)]
    assert all(0 < x <= 1 for x in u)
    cyc = [int(gemm_model(64, 64, 64, ArrayConfig(n, n, "WS"))["cycles"]) for n in (4, 8, 16)]
    assert cyc[0] > cyc[1] > cyc[2]


def test_network_vectorised_and_conv_mapping():
    layers = [{"name": "conv", "kind": "conv2d", "weight_shape": (32, 16, 3, 3),
               "macs": 32 * 16 * 9 * 64, "in_shape": (16, 8, 8)},
              {"name": "fc", "M": 1, "K": 512, "N": 64}]
    g = layers_to_gemm(layers)
    assert list(g["M"]) == [64, 1] and list(g["K"]) == [144, 512] and list(g["N"]) == [32, 64]
    many = layers * 500
    r = network_model(many, ArrayConfig(16, 16, "WS"))  # timing: benchmarks/bench_array_model.py
    assert r["totals"]["macs"] == 500 * (32 * 16 * 9 * 64 + 512 * 64)


def test_grouped_conv():
    # depthwise 3x3 on 8 channels: groups=8, per group K=9, N=1
    g = layers_to_gemm([{"name": "dw", "weight_shape": (8, 1, 3, 3), "macs": 8 * 9 * 100,
                         "in_shape": (8, 10, 10), "attrs": {"groups": 8}}])
    assert (int(g["K"][0]), int(g["N"][0]), int(g["groups"][0]), int(g["M"][0])) == (9, 1, 8, 100)


def test_bad_input():
    with pytest.raises(ValueError, match="dataflow"):
        ArrayConfig(4, 4, "XS")
    with pytest.raises(ValueError, match="rows"):
        ArrayConfig(0, 4)
    with pytest.raises(ValueError, match="M, K, N"):
        gemm_model(0, 4, 4)
