"""The array model's cycle count equals lowbit.hw's systolic RTL (PyRTL simulation)."""

import pytest

from lowbit.cost_models.array import ArrayConfig, gemm_model
from lowbit.hw import systolic


@pytest.mark.parametrize("df,R,C,M,N,K", [
    ("OS", 4, 4, 4, 4, 8),     # the hand-worked case: 16 cycles
    ("OS", 2, 3, 5, 4, 3),     # ragged tiles in both dimensions
    ("WS", 4, 4, 4, 4, 8),
    ("WS", 3, 2, 5, 3, 4),     # ragged K and N folds
])
def test_model_cycles_equal_rtl(df, R, C, M, N, K):
    model = int(gemm_model(M, K, N, ArrayConfig(R, C, df))["cycles"])
    rtl = systolic.systolic_cycles(R, C, M, N, K, dataflow=df, seed=1)
    assert model == rtl
    assert model == systolic.systolic_cycles_formula(R, C, M, N, K, dataflow=df)
