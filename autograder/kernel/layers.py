"""Provided NumPy layers: the convolutional layer students wrote in a2, and max pooling, in fast forms.

Assignment a3 builds a ConvNet on top of these. They follow the assignments' layer API: a forward
function returns ``(out, cache)`` and the matching backward function takes the upstream gradient
``dout`` (the gradient of the loss with respect to ``out``) and that ``cache``, and returns the
gradients of the loss with respect to the forward function's inputs. Arrays are NCHW.

The convolution is vectorised with *im2col*: every receptive field of the padded input becomes
one row of a matrix, so the convolution is a single matrix product; max pooling takes one strided
view per window offset. NumPy only (no PyTorch), so a student's network built on them stays NumPy
only; ``tests/test_layers.py`` checks them against ``torch.nn.functional`` and autograd.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv_forward", "conv_backward"]


def conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0):
    """Cross-correlation of a batch with a bank of filters, plus a bias per filter (PyTorch's conv2d).

    x: input (N, C, H, W); w: filters (F, C, KH, KW); b: biases (F,).
    stride: step between receptive fields (both axes); pad: zeros added on every side.
    Returns (out, cache): out (N, F, H_out, W_out) with
    H_out = (H + 2*pad - KH) // stride + 1 and W_out = (W + 2*pad - KW) // stride + 1;
    cache is what conv_backward needs.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    b = np.asarray(b)
    if x.ndim != 4 or w.ndim != 4 or b.ndim != 1:
        raise ValueError(f"conv_forward expects x (N, C, H, W), w (F, C, KH, KW) and b (F,), "
                         f"got shapes {x.shape}, {w.shape} and {b.shape}")
    N, C, H, W = x.shape
    F, Cw, KH, KW = w.shape
    if Cw != C or b.shape[0] != F:
        raise ValueError(f"conv_forward: x has {C} channels and w is {w.shape}, b {b.shape}; "
                         "w must be (F, C, KH, KW) and b (F,)")
    if stride < 1 or pad < 0:
        raise ValueError(f"conv_forward: stride must be >= 1 and pad >= 0, got stride={stride}, pad={pad}")
    if H + 2 * pad < KH or W + 2 * pad < KW:
        raise ValueError(f"conv_forward: a {KH}×{KW} filter does not fit in the padded "
                         f"{H + 2 * pad}×{W + 2 * pad} input")
    H_out = (H + 2 * pad - KH) // stride + 1
    W_out = (W + 2 * pad - KW) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    # (N, C, H_out, W_out, KH, KW): a view, one receptive field per output position.
    windows = sliding_window_view(xp, (KH, KW), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :H_out, :W_out]
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(N * H_out * W_out, C * KH * KW)  # im2col
    out = cols @ w.reshape(F, -1).T + b  # (N*H_out*W_out, F)
    out = np.ascontiguousarray(out.reshape(N, H_out, W_out, F).transpose(0, 3, 1, 2))
    cache = (x.shape, w, stride, pad, cols)
    return out, cache


def conv_backward(dout: np.ndarray, cache):
    """Gradients of conv_forward.

    dout: upstream gradient (N, F, H_out, W_out); cache: from conv_forward.
    Returns (dx, dw, db) with the shapes of x (N, C, H, W), w (F, C, KH, KW) and b (F,).
    """
    x_shape, w, stride, pad, cols = cache
    N, C, H, W = x_shape
    F, _, KH, KW = w.shape
    dout = np.asarray(dout)
    H_out, W_out = dout.shape[2:]
    if dout.shape != (N, F, H_out, W_out) or H_out * W_out * N != cols.shape[0]:
        raise ValueError(f"conv_backward: dout has shape {dout.shape}, but the forward pass made "
                         f"an output of {N} images × {F} filters × {cols.shape[0] // max(N, 1)} positions")
    dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, F)  # (N*H_out*W_out, F)
    db = dout.sum(axis=(0, 2, 3))
    dw = (dout_rows.T @ cols).reshape(w.shape)
    dcols = (dout_rows @ w.reshape(F, -1)).reshape(N, H_out, W_out, C, KH, KW)
    # col2im: each filter tap (u, v) touches a strided grid of the padded input; the grids of
    # different taps overlap, so accumulate one tap at a time.
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dcols.dtype)
    for u in range(KH):
        for v in range(KW):
            dxp[:, :, u:u + stride * H_out:stride, v:v + stride * W_out:stride] += (
                dcols[:, :, :, :, u, v].transpose(0, 3, 1, 2))
    dx = dxp[:, :, pad:pad + H, pad:pad + W] if pad else dxp
    return np.ascontiguousarray(dx), dw, db
