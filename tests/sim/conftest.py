"""Puts this folder on ``sys.path`` so the independent reference ``sim_ref`` imports."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
