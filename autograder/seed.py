"""One place for randomness: test inputs are drawn here, on the CPU, from a named seed."""

from __future__ import annotations

import random

import numpy as np


def rng(seed: int) -> np.random.Generator:
    """A NumPy generator for ``seed``; every test input in the course is drawn from one of these."""
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy's legacy global generator and (when imported) PyTorch, for training runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # NumPy-only use
        return
    torch.manual_seed(seed)
