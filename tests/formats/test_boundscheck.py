"""Every numba kernel (lowbit.formats and lowbit.kernels) runs with numba's bounds checking on
(``NUMBA_BOUNDSCHECK=1``) over adversarial inputs - an out-of-range table index raises instead
of reading whatever memory follows the table - and gives the same results as without it.
numba reads the flag when it compiles, so the probe runs in a subprocess with its own, empty
``NUMBA_CACHE_DIR`` (a kernel cached without bounds checks must not be loaded)."""

import os
import subprocess
import sys

import boundscheck_probe

HERE = os.path.dirname(os.path.abspath(__file__))


def test_kernels_in_bounds_and_unchanged(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"),
               PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, os.path.join(HERE, "boundscheck_probe.py")], env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert os.listdir(tmp_path / "numba-cache"), "the probe must compile into its own cache"
    assert out.stdout.strip() == boundscheck_probe.digest()
