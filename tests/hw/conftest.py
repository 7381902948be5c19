import os

import pytest


@pytest.fixture(scope="session")
def hdl_build_dir(tmp_path_factory):
    """HDL build root: $LOWBIT_HDL_CACHE when set (persistent cache), else a session tmp dir."""
    d = os.environ.get("LOWBIT_HDL_CACHE")
    return d if d else str(tmp_path_factory.mktemp("hdl_build"))
