"""Vectorised NumPy max pooling: the benchmark's reference for a3's loop version.

Not part of any kernel's path (:mod:`autograder.profiles`): with a3's ``max_pool_forward`` signature
it would be an answer to that exercise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["max_pool_forward_fast", "max_pool_backward_fast"]


def max_pool_forward_fast(x: np.ndarray, pool_height: int, pool_width: int, stride: int):
    """Max pooling without loops over output positions: one strided view per window offset.

    x: (N, C, H, W). Returns (out, cache): out (N, C, H_out, W_out) with
    H_out = (H - pool_height) // stride + 1 (and W_out likewise). Overlapping windows
    (stride < pool size) are fine. Ties go to the first offset in row-major order.
    """
    N, C, H, W = x.shape
    H_out = (H - pool_height) // stride + 1
    W_out = (W - pool_width) // stride + 1
    out = np.full((N, C, H_out, W_out), -np.inf, dtype=x.dtype)
    arg = np.zeros((N, C, H_out, W_out), dtype=np.int64)
    for u in range(pool_height):
        for v in range(pool_width):
            view = x[:, :, u:u + stride * (H_out - 1) + 1:stride, v:v + stride * (W_out - 1) + 1:stride]
            better = view > out
            np.copyto(out, view, where=better)
            np.copyto(arg, u * pool_width + v, where=better)
    return out, (x.shape, arg, pool_height, pool_width, stride)


def max_pool_backward_fast(dout: np.ndarray, cache) -> np.ndarray:
    """Gradient of :func:`max_pool_forward_fast`: each dout entry goes to its window's maximum,
    summed where windows overlap. dout (N, C, H_out, W_out); returns (N, C, H, W)."""
    x_shape, arg, pool_height, pool_width, stride = cache
    _, _, H_out, W_out = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for u in range(pool_height):
        for v in range(pool_width):
            dx[:, :, u:u + stride * (H_out - 1) + 1:stride, v:v + stride * (W_out - 1) + 1:stride] += \
                np.where(arg == u * pool_width + v, dout, 0)
    return dx
