"""Suite-wide set-up.

Triton's interpreter must be chosen before anything imports triton (its standard library is
decorated at import time), and tests of any area may import it first: select the interpreter
here, at collection, when this machine has no NVIDIA GPU and the variable is not set already.
"""

import os

if not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
