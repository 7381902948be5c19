import pytest


@pytest.fixture(scope="session")
def digits():
    from lowbit.sim.workloads import get_workload

    return get_workload("digits-cnn")
