"""Checks for assignment a2_conv_layer: the convolutional layer, forward and backward, loops and im2col.

References: ``F.conv2d`` for the forward pass, PyTorch autograd through it for the backward pass,
``F.unfold`` / ``F.fold`` for im2col / col2im — all in float64. Without ``seed`` a check runs its
visible cases; with ``seed`` it also sweeps ``n`` random configurations: batch, channels and
filters 1–3, odd and non-square sizes 1–9, kernels 1–4 (non-square), stride 1–3, padding 0–2,
dilation 1–3.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .. import reference as ref
from ..kernel.checks import assert_close, assert_tuple, call, call_twice, case
from ..secret import seeds_for
from ..kernel.student import probe
from ..kernel.seed import rng

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

# Numbers for the visible cases: (N, C, H, W), (F, KH, KW), stride, pad, dilation.
VISIBLE = [
    ((2, 3, 5, 5), (2, 3, 3), 1, 0, 1),
    ((1, 2, 6, 7), (3, 2, 3), 1, 1, 1),  # non-square input and kernel, padding
    ((2, 1, 7, 7), (2, 3, 3), 2, 1, 1),  # stride
    ((1, 2, 8, 9), (2, 3, 2), 1, 0, 2),  # dilation
    ((2, 2, 9, 8), (3, 2, 2), 3, 2, 2),  # everything, windows far apart
]


def configs(seed: int | None, n: int) -> Iterator[tuple]:
    """The visible cases, then (with a seed) ``n`` random valid ones."""
    yield from VISIBLE
    if seed is None:
        return
    g = rng(seed)
    made = 0
    while made < n:
        N, C, F = (int(v) for v in g.integers(1, 4, size=3))
        H, W = (int(v) for v in g.integers(1, 10, size=2))
        KH, KW = (int(v) for v in g.integers(1, 5, size=2))
        stride, pad, dilation = int(g.integers(1, 4)), int(g.integers(0, 3)), int(g.integers(1, 4))
        if H + 2 * pad < dilation * (KH - 1) + 1 or W + 2 * pad < dilation * (KW - 1) + 1:
            continue
        made += 1
        yield (N, C, H, W), (F, KH, KW), stride, pad, dilation


def _inputs(cfg: tuple, g: np.random.Generator):
    (N, C, H, W), (F, KH, KW), stride, pad, dilation = cfg
    x = g.standard_normal((N, C, H, W))
    w = g.standard_normal((F, C, KH, KW))
    b = g.standard_normal(F)
    return x, w, b, dict(stride=stride, pad=pad, dilation=dilation)


DEFAULTS = dict(stride=1, pad=0, dilation=1)  # the release's defaults: such a case omits them


def _given(conv: dict) -> dict:
    """The keyword arguments a call passes: none for a case that is the defaults."""
    return {} if conv == DEFAULTS else conv


def _conv(conv: dict) -> str:
    if conv == DEFAULTS:
        return "stride, pad and dilation by their defaults"
    return f"stride={conv['stride']}, pad={conv['pad']}, dilation={conv['dilation']}"


def _label(name: str, x, w, conv: dict) -> str:
    return f"{name}(x {x.shape}, w {w.shape}, {_conv(conv)})"


def _forward(fn: Callable, name: str, x, w, b, conv: dict):
    label = _label(name, x, w, conv)
    result = assert_tuple(call(fn, x, w, b, name=label, **_given(conv)), 2, name=label, what="(out, cache)",
                          hint="a forward function ends with `return out, cache`.")
    return result, label


def check_conv_forward(fn: Callable, name: str, seed: int | None = None, n: int = 30) -> None:
    """``fn(x, w, b, stride, pad, dilation) -> (out, cache)`` against ``F.conv2d``."""
    g = rng(20 if seed is None else seed)
    for cfg in configs(seed, n):
        with case():
            x, w, b, conv = _inputs(cfg, g)
            label = _label(name, x, w, conv)
            result, again = call_twice(fn, x, w, b, name=label, what="x, w or b", **_given(conv))
            out, _ = assert_tuple(result, 2, name=label, what="(out, cache)",
                                  hint="a forward function ends with `return out, cache`.")
            assert_close(out, ref.conv2d(x, w, b, **conv), name=label,
                         hint="out[n, f, i, j] = b[f] + sum over c, u, v of x_pad[n, c, i*stride + u*dilation, "
                              "j*stride + v*dilation] * w[f, c, u, v]; the output is (N, F, H_out, W_out).")
            again()


def check_conv_backward(forward: Callable, backward: Callable, name: str, seed: int | None = None,
                        n: int = 30) -> None:
    """``backward(dout, cache) -> (dx, dw, db)`` against autograd through ``F.conv2d``; ``cache`` comes
    from the student's own ``forward``."""
    fwd_name = name.replace("backward", "forward")
    g = rng(21 if seed is None else seed)
    for cfg in configs(seed, n):
        with case():
            x, w, b, conv = _inputs(cfg, g)
            (out, cache), _ = _forward(forward, fwd_name, x, w, b, conv)
            dout = g.standard_normal(np.shape(out))
            label = f"{name}(dout {dout.shape}) after " + _label(fwd_name, x, w, conv)
            grads = assert_tuple(call(backward, dout, cache, name=label), 3, name=label, what="(dx, dw, db)",
                                 hint="return dx, dw, db in that order.")
            expected = ref.conv2d_backward(x, w, b, dout, **conv)
            hints = {
                "dx": "every window of x_pad gets dout[n, f, i, j] * w[f] added (+=, windows overlap); then cut "
                      "the padding off. Equivalently a full convolution of dout with the flipped kernel.",
                "dw": "dw[f] accumulates dout[n, f, i, j] * (the input window) over n, i, j — mind stride and "
                      "dilation in the window.",
                "db": "db[f] = sum of dout[:, f, :, :] (over batch, height and width).",
            }
            for what, got, exp in zip(("dx", "dw", "db"), grads, expected):
                assert_close(got, exp, name=f"{label}: {what}", hint=hints[what])


def check_im2col(im2col: Callable, seed: int | None = None, n: int = 30) -> None:
    """``im2col(x, KH, KW, stride, pad, dilation)`` against ``F.unfold`` (rows (c, u, v), columns (n, i, j))."""
    g = rng(22 if seed is None else seed)
    for cfg in configs(seed, n):
        with case():
            x, w, _, conv = _inputs(cfg, g)
            KH, KW = w.shape[2:]
            label = f"im2col(x {x.shape}, KH={KH}, KW={KW}, {_conv(conv)})"
            got, again = call_twice(im2col, x, KH, KW, name=label, what="x", **_given(conv))
            assert_close(got, ref.unfold(x, (KH, KW), **conv), name=label,
                         hint="row (c*KH + u)*KW + v, column (n*H_out + i)*W_out + j holds "
                              "x_pad[n, c, i*stride + u*dilation, j*stride + v*dilation].")
            again()


def check_col2im(col2im: Callable, seed: int | None = None, n: int = 30) -> None:
    """``col2im(cols, x_shape, KH, KW, stride, pad, dilation)`` against ``F.fold`` (overlaps add up)."""
    g = rng(23 if seed is None else seed)
    cases = list(configs(seed, n)) + [((1, 1, 5, 5), (1, 3, 3), 1, 0, 1)]  # maximal overlap
    for cfg in cases:
        with case():
            x, w, _, conv = _inputs(cfg, g)
            KH, KW = w.shape[2:]
            rows = x.shape[1] * KH * KW
            cols = g.standard_normal((rows, ref.unfold(x, (KH, KW), **conv).shape[1]))
            label = f"col2im(cols {cols.shape}, x_shape={x.shape}, KH={KH}, KW={KW}, {_conv(conv)})"
            got = call(col2im, cols.copy(), x.shape, KH, KW, name=label, **_given(conv))
            assert_close(got, ref.fold(cols, x.shape, (KH, KW), **conv), name=label,
                         hint="each column entry is added (+=) to the pixel im2col read it from: overlapping "
                              "receptive fields sum up; entries that fall in the padding are dropped.")


def _numeric_cases(g: np.random.Generator, seed: int | None, n: int):
    """(label, f, x, autograd function) — including an f that returns a view of x. Each f is a probe
    function (:mod:`autograder.probes`): the kernel builds it by name, the check differentiates the
    same function with autograd here."""
    A = g.standard_normal((4, 2))
    cases = [
        ("f(x) = x**3", probe("cube"), lambda t: t**3, g.standard_normal((3, 4))),
        ("f(x) = x.T @ A (returns a new array)", probe("transpose_times", A), lambda t: t.T @ torch.from_numpy(A),
         g.standard_normal((4, 3))),
        ("f(x) = x.T (returns a view of x)", probe("transpose"), lambda t: t.T, g.standard_normal((2, 5))),
        ("f(x) = tanh(x) * x[::-1]", probe("tanh_times_reversed"), lambda t: torch.tanh(t) * t.flip(0),
         g.standard_normal(6)),
    ]
    if seed is not None:
        for _ in range(n):
            shape = tuple(int(v) for v in g.integers(1, 5, size=int(g.integers(1, 4))))
            cases.append((f"f(x) = sin(x) * x**2 on shape {shape}", probe("sin_times_square"),
                          lambda t: torch.sin(t) * t**2, g.standard_normal(shape)))
    return cases


def check_numerical_gradient(eval_numerical_gradient_array: Callable, seed: int | None = None, n: int = 8) -> None:
    """The student's central differences against autograd: accurate to O(h²), x restored, views copied."""
    g = rng(24 if seed is None else seed)
    for desc, f, torch_f, x in _numeric_cases(g, seed, n):
        with case():
            t = torch.tensor(x, requires_grad=True)
            y = torch_f(t)
            dout = g.standard_normal(tuple(y.shape))
            y.backward(torch.from_numpy(dout))
            label = f"eval_numerical_gradient_array({desc}, x {x.shape})"
            got, again = call_twice(eval_numerical_gradient_array, f, x, dout, name=label,
                                    what="x (was each nudged element put back?)")
            assert_close(got, t.grad.numpy(), name=label, rtol=1e-7, atol=1e-8,
                         hint="(L(x + h) - L(x - h)) / (2h) with L = sum(f(x) * dout); copy f's output before "
                              "nudging again (f may return a view of x); a one-sided difference is only O(h).")
            again()
