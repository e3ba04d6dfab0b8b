"""One place for randomness: test inputs are drawn here, on the CPU, from a named seed."""

from __future__ import annotations

import numpy as np


def rng(seed: int) -> np.random.Generator:
    """A NumPy generator for ``seed``; every test input in the course is drawn from one of these."""
    return np.random.default_rng(seed)
