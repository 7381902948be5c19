"""A NaN input in an element format without NaN encodes to +0 in every kernel (the kernels'
documented policy, lowbit.formats ``nan_input="zero"``): the Triton encoder used to keep the
NaN's sign bit (-0, code 0x20 for FP6 / 0x8 for FP4), found by ``python -m
lowbit.kernels.validate`` (a README command)."""

import numpy as np
import pytest
import torch

from lowbit.formats import encode
from lowbit.kernels import numba_quant, triton_quant

NEG_NAN = np.array([-np.nan, np.nan, -1.5, 0.0], dtype=np.float32)
NEG_NAN[0] = np.float32(np.frombuffer(np.uint32(0xFFC00001).tobytes(), np.float32)[0])


@pytest.mark.parametrize("fmt", ["fp6_e2m3", "fp6_e3m2", "fp4_e2m1"])
def test_nan_without_nan_code_is_plus_zero(fmt):
    assert np.signbit(NEG_NAN[0]) and np.isnan(NEG_NAN[0])
    ref = np.asarray(encode(NEG_NAN, fmt, overflow="saturate", nan_input="zero"))
    assert ref[0] == 0 and ref[1] == 0
    tri = triton_quant.fp8_quantize(torch.from_numpy(NEG_NAN), fmt).cpu().numpy()
    np.testing.assert_array_equal(tri, ref)
    np.testing.assert_array_equal(numba_quant.fp8_quantize(NEG_NAN, fmt), ref)
