"""Checks for assignment a3_pooling_and_cnn: ReLU, affine, pooling, softmax loss and a small ConvNet.

Every layer follows the assignments' API: ``<layer>_forward`` returns ``(out, cache)`` and
``<layer>_backward(dout, cache)`` returns the gradients, so a backward check first calls the
student's forward to get the cache. Forward values are compared with ``torch.nn.functional``
(relu, linear, max_pool2d, avg_pool2d, adaptive_avg_pool2d, cross_entropy) and gradients with
autograd's vector-Jacobian products, all in float64 (``autograder.reference``). Without ``seed``
a check runs its visible cases; with ``seed`` it also sweeps ``n`` random configurations (odd and
non-square sizes, non-square pools, strides that overlap, tile or skip, several channels and batch
sizes) — the hidden tests. Inputs to max pooling are random normal floats: no ties.

The network is checked against a PyTorch forward pass of the same weights and autograd's
gradient of every parameter on tiny models, and by training it with a grader-owned, deterministic
SGD-with-momentum loop on the embedded MNIST digits (:mod:`autograder.recipes`, run where the
student's code runs); the grader measures the trained weights' accuracy with its own forward pass.

The assignment is NumPy only: its grading kernels have no torch or scipy (:mod:`autograder.profiles`).
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from typing import Any, Callable, Iterator

import numpy as np

from .. import reference as ref
from ..kernel import student
from ..kernel.checks import (CheckFailure, assert_close, assert_shape, assert_tuple, call, call_twice, describe,
                      guarded, case)
from ..secret import seeds_for
from ..kernel.seed import rng
from . import dims, one_blas_thread, recipe

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

# The training recipe of exercise 10 (the grader's loop, not the student's).
TRAIN = dict(epochs=2, batch_size=50, learning_rate=0.08, momentum=0.9)
NET = dict(input_dim=(1, 28, 28), num_filters=8, filter_size=5, hidden_dim=64, num_classes=10)
THRESHOLD = 0.90  # held-out accuracy the trained network must reach
TIME_LIMIT = 90.0  # seconds of the kernel's CPU time the whole training run may take (measured by the judge)
PARAM_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def _forward(fn: Callable, label: str, *args: Any) -> tuple:
    return assert_tuple(call(fn, *args, name=label), 2, name=label, what="(out, cache)",
                        hint="a forward function ends with `return out, cache`.")


def _forward_twice(fn: Callable, label: str, *args: Any) -> tuple[tuple, Callable[[], None]]:
    """``(out, cache)`` and the :func:`call_twice` check that ``fn`` left its input alone."""
    result, again = call_twice(fn, *args, name=label, what="x")
    return assert_tuple(result, 2, name=label, what="(out, cache)",
                        hint="a forward function ends with `return out, cache`."), again


_dims = dims


# ---------------------------------------------------------------------------------------------
# 1. ReLU
# ---------------------------------------------------------------------------------------------

def check_relu(relu_forward: Callable, relu_backward: Callable, seed: int | None = None, n: int = 20) -> None:
    """relu_forward(x) -> (max(x, 0), cache); relu_backward(dout, cache) -> dx, for any shape."""
    g = rng(301 if seed is None else seed)
    shapes = [(3, 4), (2, 3, 4, 5), (7,)]
    if seed is not None:
        shapes += [tuple(int(v) for v in g.integers(1, 7, size=int(g.integers(1, 5)))) for _ in range(n)]
    _check_layer_pair(relu_forward, relu_backward, "relu", shapes, g, ref.relu, ref.relu_vjp, lambda shape: shape,
                      forward_hint="max(x, 0) elementwise (np.maximum, not np.max, which reduces along an axis): "
                                   "negative entries become 0, the others pass unchanged; same shape as x.",
                      backward_hint="dx = dout where the forward input x was > 0, and 0 elsewhere: the mask "
                                    "comes from x (keep it in the cache), not from dout.")


def _check_layer_pair(forward: Callable, backward: Callable, name: str, shapes: list[tuple[int, ...]],
                      g: np.random.Generator, reference: Callable, vjp: Callable, out_shape: Callable,
                      forward_hint: str, backward_hint: str) -> None:
    """A layer without parameters, case by case: forward(x) -> (out, cache) against ``reference``
    (and called twice: a second call gives the same), then backward(dout, cache) -> dx against ``vjp``."""
    for shape in shapes:
        with case():
            x = g.standard_normal(shape)
            before = x.copy()
            label = f"{name}_forward(x {_dims(shape)})"
            (out, cache), again = _forward_twice(forward, label, x)
            assert_close(out, reference(before), name=label, hint=forward_hint)
            again()
            dout = g.standard_normal(out_shape(shape))
            blabel = f"{name}_backward(dout {_dims(dout.shape)}, cache)"
            if dout.shape != tuple(shape):
                blabel += f" for x {_dims(shape)}"
            dx = call(backward, dout.copy(), cache, name=blabel)
            assert_close(dx, vjp(before, dout), name=blabel, hint=backward_hint)


# ---------------------------------------------------------------------------------------------
# 2. Affine
# ---------------------------------------------------------------------------------------------

def check_affine(affine_forward: Callable, affine_backward: Callable, seed: int | None = None,
                 n: int = 20) -> None:
    """affine_forward(x (N, d_1..d_k), w (D, M), b (M,)) -> (x.reshape(N, D) @ w + b, cache);
    affine_backward(dout (N, M), cache) -> (dx like x, dw (D, M), db (M,))."""
    g = rng(302 if seed is None else seed)
    cases = [((4, 6), 3), ((2, 3, 4), 5), ((3, 2, 2, 3), 4)]
    if seed is not None:
        for _ in range(n):
            rest = tuple(int(v) for v in g.integers(1, 6, size=int(g.integers(1, 4))))
            cases.append(((int(g.integers(1, 6)),) + rest, int(g.integers(1, 8))))
    for shape, M in cases:
        with case():
            D = int(np.prod(shape[1:]))
            x, w, b = g.standard_normal(shape), g.standard_normal((D, M)), g.standard_normal(M)
            before = x.copy()
            label = f"affine_forward(x {_dims(shape)}, w {_dims(w.shape)}, b {_dims(b.shape)})"
            (out, cache), again = _forward_twice(affine_forward, label, x, w, b)
            assert_close(out, ref.affine(before, w, b), name=label,
                         hint=f"flatten each example to a row of D = {D} values (x.reshape(N, -1)), "
                              "then out = x_rows @ w + b, of shape (N, M).")
            again()
            dout = g.standard_normal((shape[0], M))
            blabel = f"affine_backward(dout {_dims(dout.shape)}, cache) for x {_dims(shape)}"
            grads = assert_tuple(call(affine_backward, dout.copy(), cache, name=blabel), 3, name=blabel,
                                 what="(dx, dw, db)", hint="return dx, dw, db in that order.")
            dx, dw, db = ref.affine_vjp(before, w, b, dout)
            assert_close(grads[0], dx, name=f"{blabel}: dx",
                         hint="dx = dout @ w.T, reshaped back to the shape of x (N, d_1, ..., d_k).")
            assert_close(grads[1], dw, name=f"{blabel}: dw",
                         hint="dw = x.reshape(N, D).T @ dout, of shape (D, M) like w.")
            assert_close(grads[2], db, name=f"{blabel}: db",
                         hint="db = dout summed over the batch axis (axis 0), of shape (M,) like b.")


# ---------------------------------------------------------------------------------------------
# 3.-6. Max and average pooling
# ---------------------------------------------------------------------------------------------

VISIBLE_POOLS = [  # (x shape, pool_height, pool_width, stride)
    ((2, 3, 4, 4), 2, 2, 2),   # the classic: 2×2 windows that tile the input
    ((1, 2, 5, 7), 3, 2, 1),   # overlapping, non-square pool, odd non-square input
    ((2, 1, 7, 6), 3, 3, 2),   # overlapping by one row and column
    ((1, 2, 6, 5), 2, 2, 3),   # stride larger than the pool: rows and columns skipped
    ((3, 2, 5, 5), 2, 3, 2),   # the last row of the input is not covered (floor)
]


def pool_configs(seed: int | None, n: int) -> Iterator[tuple]:
    """The visible pooling cases, then (with a seed) ``n`` random ones whose output is at least 1×1:
    N 1..3, C 1..4, H and W 1..11, pools 1..4 (non-square), stride 1..3."""
    yield from VISIBLE_POOLS
    if seed is None:
        return
    g = rng(seed)
    made = 0
    while made < n:
        h, w = (int(v) for v in g.integers(1, 12, size=2))
        ph, pw = (int(v) for v in g.integers(1, 5, size=2))
        if ph > h or pw > w:
            continue
        made += 1
        yield ((int(g.integers(1, 4)), int(g.integers(1, 5)), h, w), ph, pw, int(g.integers(1, 4)))


def _pool_label(fn: str, arg: str, shape: tuple, ph: int, pw: int, stride: int) -> str:
    return f"{fn}({arg} {_dims(shape)}, pool {ph}×{pw}, stride {stride})"


def _overlap(ph: int, pw: int, stride: int) -> bool:
    return stride < ph or stride < pw


def _check_pool_forward(fn: Callable, name: str, reference: Callable, seed: int | None, n: int,
                        hint: str) -> None:
    g = rng(303 if seed is None else seed + 1)
    for shape, ph, pw, stride in pool_configs(seed, n):
        with case():
            x = g.standard_normal(shape)
            before = x.copy()
            label = _pool_label(name, "x", shape, ph, pw, stride)
            (out, _), again = _forward_twice(fn, label, x, ph, pw, stride)
            assert_close(out, reference(before, (ph, pw), stride), name=label, hint=hint)
            again()


def _check_pool_backward(forward: Callable, backward: Callable, names: tuple[str, str], vjp: Callable,
                         seed: int | None, n: int, hint: str) -> None:
    g = rng(304 if seed is None else seed + 2)
    for shape, ph, pw, stride in pool_configs(seed, n):
        with case():
            x = g.standard_normal(shape)
            before = x.copy()
            _, cache = _forward(forward, _pool_label(names[0], "x", shape, ph, pw, stride), x, ph, pw, stride)
            H_out, W_out = (shape[2] - ph) // stride + 1, (shape[3] - pw) // stride + 1
            dout = g.standard_normal(shape[:2] + (H_out, W_out))
            label = _pool_label(names[1], "dout", dout.shape, ph, pw, stride) + f" for x {_dims(shape)}"
            dx = call(backward, dout.copy(), cache, name=label)
            extra = (" The windows overlap here (stride < pool size), so one input receives gradient from "
                     "several windows: accumulate with += instead of overwriting with =."
                     if _overlap(ph, pw, stride) else "")
            assert_close(dx, vjp(before, (ph, pw), stride, dout), name=label, hint=hint + extra)


MAX_FORWARD_HINT = ("out[n, c, i, j] = the max of x[n, c, i*stride : i*stride + pool_height, "
                    "j*stride : j*stride + pool_width]; H_out = (H - pool_height) // stride + 1 and "
                    "W_out = (W - pool_width) // stride + 1 (no padding).")
MAX_BACKWARD_HINT = ("each dout[n, c, i, j] goes, whole, to the position of the maximum of its "
                     "window (window start i*stride, j*stride) and nowhere else; a flat argmax k "
                     "over a pool_height×pool_width window is row k // pool_width, column k % pool_width.")
AVG_FORWARD_HINT = ("out[n, c, i, j] = the mean of the pool_height×pool_width window starting at "
                    "(i*stride, j*stride); H_out = (H - pool_height) // stride + 1 and "
                    "W_out = (W - pool_width) // stride + 1 (no padding).")
AVG_BACKWARD_HINT = ("each dout[n, c, i, j] is spread evenly over its window: every one of the "
                     "pool_height*pool_width inputs in it gets dout[n, c, i, j] / (pool_height*pool_width).")


def check_max_pool_forward(max_pool_forward: Callable, seed: int | None = None, n: int = 30) -> None:
    """max_pool_forward(x (N, C, H, W), pool_height, pool_width, stride) -> (out (N, C, H_out, W_out), cache)."""
    _check_pool_forward(max_pool_forward, "max_pool_forward", ref.max_pool2d, seed, n, MAX_FORWARD_HINT)


def check_max_pool_backward(max_pool_forward: Callable, max_pool_backward: Callable, seed: int | None = None,
                            n: int = 30) -> None:
    """max_pool_backward(dout (N, C, H_out, W_out), cache from max_pool_forward) -> dx (N, C, H, W)."""
    _check_pool_backward(max_pool_forward, max_pool_backward, ("max_pool_forward", "max_pool_backward"),
                         ref.max_pool2d_vjp, seed, n, MAX_BACKWARD_HINT)


def check_avg_pool_forward(avg_pool_forward: Callable, seed: int | None = None, n: int = 30) -> None:
    """avg_pool_forward(x (N, C, H, W), pool_height, pool_width, stride) -> (out (N, C, H_out, W_out), cache)."""
    _check_pool_forward(avg_pool_forward, "avg_pool_forward", ref.avg_pool2d, seed, n, AVG_FORWARD_HINT)


def check_avg_pool_backward(avg_pool_forward: Callable, avg_pool_backward: Callable, seed: int | None = None,
                            n: int = 30) -> None:
    """avg_pool_backward(dout (N, C, H_out, W_out), cache from avg_pool_forward) -> dx (N, C, H, W)."""
    _check_pool_backward(avg_pool_forward, avg_pool_backward, ("avg_pool_forward", "avg_pool_backward"),
                         ref.avg_pool2d_vjp, seed, n, AVG_BACKWARD_HINT)


# ---------------------------------------------------------------------------------------------
# 7. Global average pooling
# ---------------------------------------------------------------------------------------------

def check_global_avg_pool(global_avg_pool_forward: Callable, global_avg_pool_backward: Callable,
                          seed: int | None = None, n: int = 20) -> None:
    """global_avg_pool_forward(x (N, C, H, W)) -> (out (N, C), cache); backward(dout (N, C), cache) -> dx."""
    g = rng(307 if seed is None else seed)
    shapes = [(2, 3, 4, 5), (1, 4, 7, 3), (3, 2, 1, 1)]
    if seed is not None:
        shapes += [tuple(int(v) for v in g.integers(1, 9, size=4)) for _ in range(n)]
    _check_layer_pair(global_avg_pool_forward, global_avg_pool_backward, "global_avg_pool", shapes, g,
                      ref.global_avg_pool, ref.global_avg_pool_vjp, lambda shape: shape[:2],
                      forward_hint="the mean of each H×W plane: average over axes 2 and 3, giving (N, C) "
                                   "(no keepdims).",
                      backward_hint="every one of the H*W pixels of plane (n, c) gets dout[n, c] / (H*W); "
                                    "dx has the shape of x.")


# ---------------------------------------------------------------------------------------------
# 8. Softmax loss
# ---------------------------------------------------------------------------------------------

def check_softmax_loss(softmax_loss: Callable, seed: int | None = None, n: int = 20) -> None:
    """softmax_loss(x (N, K) scores, y (N,) labels) -> (mean cross-entropy loss, dx (N, K))."""
    g = rng(308 if seed is None else seed)
    cases = [g.standard_normal((5, 4)) * 2, g.standard_normal((3, 10)), g.standard_normal((1, 3)),
             g.standard_normal((4, 6)) + g.uniform(500, 1000, size=(4, 1))]  # exp(x) would overflow
    if seed is not None:
        for _ in range(n):
            N, K = int(g.integers(1, 9)), int(g.integers(2, 13))
            x = g.standard_normal((N, K)) * float(g.uniform(0.1, 5))
            if g.random() < 0.3:
                x = x + g.uniform(-1000, 1000, size=(N, 1))
            cases.append(x)
    for x in cases:
        with case():
            N, K = x.shape
            y = g.integers(0, K, size=N)
            before = x.copy()
            large = float(np.abs(x).max()) > 100
            label = f"softmax_loss(x {_dims(x.shape)}{' with scores near ' + format(np.median(x), '.0f') if large else ''}, y ({N},))"
            try:
                with np.errstate(over="raise", invalid="raise", divide="raise"):
                    result, again = call_twice(softmax_loss, x, y, name=label, what="x or y")
            except CheckFailure as exc:
                if isinstance(exc.__cause__, FloatingPointError):
                    raise CheckFailure(
                        f"{exc}\n  Hint: exp of scores this large overflows. Subtract each row's maximum "
                        "from the scores first (softmax does not change) and compute log-probabilities "
                        "as shifted - log(sum(exp(shifted))).") from exc.__cause__
                raise
            loss, dx = assert_tuple(result, 2, name=label, what="(loss, dx)", hint="return loss, dx.")
            if np.ndim(loss) != 0:
                raise CheckFailure(f"{label}: the loss must be one number (the mean over the batch), "
                                   f"got {describe(np.asarray(loss))}.")
            expected_loss, expected_dx = ref.cross_entropy(before, y)
            assert_close(np.float64(loss), expected_loss, name=f"{label}: loss",
                         hint="the mean over the N examples of -log softmax(x[i])[y[i]] (divide the sum by N; "
                              "index one score per row: x[np.arange(N), y]).")
            assert_close(dx, expected_dx, name=f"{label}: dx",
                         hint="dx = (softmax(x) - one_hot(y)) / N: subtract 1 at each row's true class, "
                              "and divide by N because the loss is a mean.")
            again()


# ---------------------------------------------------------------------------------------------
# 9. The ConvNet's loss and gradients
# ---------------------------------------------------------------------------------------------

VISIBLE_NETS = [
    dict(input_dim=(1, 6, 6), num_filters=2, filter_size=3, hidden_dim=5, num_classes=4, N=3, reg=0.0),
    dict(input_dim=(2, 7, 5), num_filters=3, filter_size=3, hidden_dim=4, num_classes=3, N=2, reg=0.7),
]


def net_configs(seed: int | None, n: int) -> Iterator[dict]:
    yield from VISIBLE_NETS
    if seed is None:
        return
    g = rng(seed)
    for _ in range(n):
        yield dict(input_dim=(int(g.integers(1, 4)), int(g.integers(4, 10)), int(g.integers(4, 10))),
                   num_filters=int(g.integers(1, 4)), filter_size=int(g.choice([1, 3, 5])),
                   hidden_dim=int(g.integers(3, 8)), num_classes=int(g.integers(2, 7)),
                   N=int(g.integers(2, 5)), reg=float(g.choice([0.0, round(float(g.uniform(0.1, 1.0)), 2)])))


def expected_shapes(input_dim: tuple, num_filters: int, filter_size: int, hidden_dim: int,
                    num_classes: int) -> dict[str, tuple]:
    C, H, W = input_dim
    return {"W1": (num_filters, C, filter_size, filter_size), "b1": (num_filters,),
            "W2": (num_filters * (H // 2) * (W // 2), hidden_dim), "b2": (hidden_dim,),
            "W3": (hidden_dim, num_classes), "b3": (num_classes,)}


SHAPE_HINTS = {
    "W1": "num_filters filters of shape (C, filter_size, filter_size).",
    "W2": "its rows are the pooled feature map flattened: the 'same' convolution keeps H×W and the "
          "2×2 pool halves it (rounding down), so num_filters * (H // 2) * (W // 2) rows.",
    "W3": "(hidden_dim, num_classes).",
}


def _net_label(cfg: dict) -> str:
    C, H, W = cfg["input_dim"]
    return (f"SmallConvNet(input_dim=({C}, {H}, {W}), num_filters={cfg['num_filters']}, "
            f"filter_size={cfg['filter_size']}, hidden_dim={cfg['hidden_dim']}, "
            f"num_classes={cfg['num_classes']}, reg={cfg['reg']:g})")


def _build(SmallConvNet: Callable, cfg: dict, weight_scale: float, seed: int = 0) -> tuple[Any, str, dict]:
    """The student's network (an object kept where it lives), its label, and its params as data."""
    label = _net_label(cfg)
    kwargs = {k: cfg[k] for k in ("input_dim", "num_filters", "filter_size", "hidden_dim", "num_classes")}
    model = guarded(label, lambda: student.new(SmallConvNet, weight_scale=weight_scale, reg=cfg["reg"], seed=seed,
                                               **kwargs))
    params = guarded(f"{label}.params", lambda: student.op("get", model, "params"))
    if not isinstance(params, dict):
        raise CheckFailure(f"{label}: model.params should be a dict of parameter arrays, got "
                           f"{describe(params)}.\n  Hint: fill self.params in __init__.")
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise CheckFailure(f"{label}: model.params lacks {', '.join(missing)}; it should hold "
                           f"{', '.join(PARAM_NAMES)}.")
    for name, shape in expected_shapes(**kwargs).items():
        arr = params[name]
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = _dims(arr.shape) if isinstance(arr, np.ndarray) else describe(arr)
            raise CheckFailure(f"{label}: params['{name}'] should have shape {_dims(shape)}, got {got}.\n"
                               f"  Hint: {SHAPE_HINTS.get(name, 'one bias per output of its layer.')}")
    return model, label, params


def _grader_params(g: np.random.Generator, shapes: dict[str, tuple], bias_scale: float = 0.1) -> dict:
    """He-initialised weights (std sqrt(2 / fan_in)) and small random (or zero) biases, float64."""
    out = {}
    for name, shape in shapes.items():
        if name.startswith("W"):
            fan_in = int(np.prod(shape[1:])) if name == "W1" else shape[0]
            out[name] = g.standard_normal(shape) * math.sqrt(2.0 / fan_in)
        else:
            out[name] = g.standard_normal(shape) * bias_scale if bias_scale else np.zeros(shape)
    return out


def reference_scores(X: np.ndarray, params: dict, filter_size: int) -> np.ndarray:
    """conv (stride 1, 'same') - relu - 2×2 max pool - affine - relu - affine, by PyTorch."""
    return ref.small_convnet(X, params, filter_size)


def _loss_of(model: Any, label: str, X: np.ndarray, y: np.ndarray) -> tuple[float, dict]:
    result = guarded(label, lambda: student.method(model, "loss", X, y))
    loss, grads = assert_tuple(result, 2, name=label, what="(loss, grads)",
                               hint="with labels y, loss returns loss, grads.")
    if np.ndim(loss) != 0 or not isinstance(loss, (int, float, np.integer, np.floating, np.ndarray)):
        raise CheckFailure(f"{label}: the loss must be one number, got {describe(loss)}.")
    return float(loss), grads


def _set_params(model: Any, params: dict, label: str) -> None:
    for name, value in params.items():
        guarded(f"{label}: setting params['{name}']",
                lambda name=name, value=value: student.op("set_item", model, "params", name, value.copy()))


def check_conv_net_loss(SmallConvNet: Callable, seed: int | None = None, n: int = 3) -> None:
    """SmallConvNet(...).loss(X) -> scores (N, K); .loss(X, y) -> (loss, grads), checked against
    PyTorch's forward pass of the same weights and autograd's gradient of every parameter."""
    with one_blas_thread():
        _check_conv_net_loss(SmallConvNet, seed, n)


def _check_defaults(SmallConvNet: Callable) -> None:
    """``SmallConvNet()``: every argument by the release's default — the network the training
    exercise uses (``NET``), weight_scale 1e-2, no regularisation."""
    label = "SmallConvNet() (every argument by its default)"
    model = guarded(label, lambda: student.new(SmallConvNet))
    params = guarded(f"{label}.params", lambda: student.op("get", model, "params"))
    if not isinstance(params, dict):
        raise CheckFailure(f"{label}: model.params should be a dict of parameter arrays, got {describe(params)}.")
    defaults = ", ".join(f"{k}={v!r}" for k, v in NET.items())
    for name, shape in expected_shapes(**NET).items():
        arr = params.get(name)
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = _dims(arr.shape) if isinstance(arr, np.ndarray) else describe(arr)
            raise CheckFailure(f"{label}: params['{name}'] should have shape {_dims(shape)}, got {got}.\n"
                               f"  Hint: keep the release's defaults: {defaults}.")
    std = float(np.std(params["W1"]))
    if not 0.3e-2 < std < 3e-2:
        raise CheckFailure(f"{label}: params['W1'] has standard deviation {std:.3g}, expected about 1e-2.\n"
                           "  Hint: keep the release's default weight_scale=1e-2.")
    g = rng(312)
    X, y = g.standard_normal((2, *NET["input_dim"])), g.integers(0, NET["num_classes"], size=2)
    loss, _ = _loss_of(model, f"{label}.loss(X (2, 1, 28, 28), y)", X, y)
    expected, _ = ref.small_convnet(X, {k: params[k] for k in PARAM_NAMES}, NET["filter_size"], y=y, reg=0.0)
    if not abs(loss - expected) <= 1e-6 * max(1.0, abs(expected)):
        raise CheckFailure(f"{label}.loss(X, y): loss {loss:.8g}, expected {expected:.8g} (no regularisation).\n"
                           "  Hint: keep the release's default reg=0.0.")


def _check_conv_net_loss(SmallConvNet: Callable, seed: int | None, n: int) -> None:
    if seed is None:
        _check_defaults(SmallConvNet)
    g = rng(309 if seed is None else seed + 3)
    for cfg in net_configs(seed, n):
        with case():
            model, label, start = _build(SmallConvNet, cfg, weight_scale=1e-3)
            K, N = cfg["num_classes"], cfg["N"]
            X = g.standard_normal((N,) + tuple(cfg["input_dim"]))
            y = g.integers(0, K, size=N)
            # The initialisation: scaled normal weights, zero biases, loss near log(K).
            for name in PARAM_NAMES:
                arr = start[name]
                if name.startswith("b") and np.any(arr != 0):
                    raise CheckFailure(f"{label}: params['{name}'] should start at zero.")
                if name.startswith("W") and arr.size >= 12 and not 0.3e-3 < float(np.std(arr)) < 3e-3:
                    raise CheckFailure(
                        f"{label} with weight_scale=1e-3: params['{name}'] has standard deviation "
                        f"{float(np.std(arr)):.3g}, expected about 1e-3.\n  Hint: weights start as "
                        "weight_scale * (standard normal samples) from np.random.default_rng(seed).")
            init_label = f"{label}.loss(X {_dims(X.shape)}, y) at initialisation (weight_scale=1e-3)"
            loss0, _ = _loss_of(model, init_label, X.copy(), y.copy())
            if not abs(loss0 - math.log(K)) < 0.02 * math.log(K):
                raise CheckFailure(
                    f"{init_label}: loss {loss0:.6g}, expected about log({K}) = {math.log(K):.6g}.\n"
                    "  Hint: with tiny weights every score is near 0, the softmax is uniform over the "
                    f"{K} classes and the loss is log(num_classes).")
            # Known weights from here on (so the check does not depend on the student's random draws).
            params = _grader_params(g, expected_shapes(**{k: cfg[k] for k in (
                "input_dim", "num_filters", "filter_size", "hidden_dim", "num_classes")}))
            _set_params(model, params, label)
            slabel = f"{label}.loss(X {_dims(X.shape)})"
            scores = guarded(slabel, lambda: student.method(model, "loss", X.copy()))
            if isinstance(scores, tuple):
                raise CheckFailure(f"{slabel}: without y, loss must return the scores array alone, "
                                   f"got a tuple of {len(scores)} items.")
            assert_close(scores, reference_scores(X, params, cfg["filter_size"]), name=f"{slabel}: scores",
                         hint="scores = affine(relu(affine(max_pool_2x2(relu(conv(X)))))) with the weights "
                              f"read from self.params each call; the convolution has stride 1 and "
                              f"padding (filter_size - 1) // 2 = {(cfg['filter_size'] - 1) // 2}; the "
                              "pool is 2×2 with stride 2.")
            llabel = f"{label}.loss(X {_dims(X.shape)}, y)"
            loss, grads = _loss_of(model, llabel, X.copy(), y.copy())
            expected_loss, expected_grads = ref.small_convnet(X, params, cfg["filter_size"], y=y, reg=cfg["reg"])
            assert_close(np.float64(loss), expected_loss, name=f"{llabel}: loss",
                         hint="the mean softmax cross-entropy of the scores plus "
                              "0.5 * reg * (sum(W1**2) + sum(W2**2) + sum(W3**2)); biases are not regularised.")
            if not isinstance(grads, dict) or set(grads) != set(params):
                raise CheckFailure(f"{llabel}: grads should be a dict with the keys of params "
                                   f"({', '.join(PARAM_NAMES)}), got {describe(grads)}.")
            for name in PARAM_NAMES:
                hint = (f"the gradient of the loss with respect to params['{name}'] (autograd through the same "
                        "network agrees with the loss above, so the error is in the backward pass).")
                if name.startswith("W") and cfg["reg"]:
                    hint += (f" Also: reg = {cfg['reg']:g} here, and the gradient of 0.5 * reg * sum({name}**2) "
                             f"is reg * {name}; add it to grads['{name}'].")
                assert_close(grads[name], expected_grads[name], name=f"{llabel}: d/dparams['{name}']",
                             rtol=1e-5, atol=1e-7, hint=hint)


# ---------------------------------------------------------------------------------------------
# 10. SGD with momentum, and training the network on real digits
# ---------------------------------------------------------------------------------------------

VISIBLE_SGD = [((3, 4), 0.1, 0.9, 5), ((5,), 0.01, 0.5, 4), ((2, 1, 3, 3), 0.05, 0.0, 3)]


def check_sgd_momentum(sgd_momentum: Callable, seed: int | None = None, n: int = 10) -> None:
    """sgd_momentum(w, dw, v, learning_rate, momentum) -> (next_w, next_v), step by step against
    ``torch.optim.SGD(lr, momentum)`` fed the same gradients."""
    g = rng(310 if seed is None else seed + 4)
    cases = list(VISIBLE_SGD)
    if seed is not None:
        cases += [(tuple(int(v) for v in g.integers(1, 6, size=int(g.integers(1, 4)))),
                   float(g.choice([0.001, 0.01, 0.1, 0.5])), float(g.choice([0.0, 0.5, 0.9, 0.99])),
                   int(g.integers(2, 7))) for _ in range(n)]
    for shape, lr, mom, steps in cases:
        with case():
            w0 = g.standard_normal(shape)
            dws = [g.standard_normal(shape) for _ in range(steps)]
            expected = ref.sgd_momentum_steps(w0, dws, lr, mom)
            w, v = w0.copy(), np.zeros(shape)
            for t, dw in enumerate(dws):
                label = (f"sgd_momentum(w {_dims(shape)}, dw, v, learning_rate={lr:g}, momentum={mom:g}) "
                         f"at step {t + 1} of {steps} (v starts at zeros)")
                result = assert_tuple(call(sgd_momentum, w.copy(), dw.copy(), v.copy(), lr, mom, name=label), 2,
                                      name=label, what="(next_w, next_v)", hint="return next_w, next_v.")
                assert_close(result[0], expected[t], name=f"{label}: next_w",
                             hint="v = momentum * v - learning_rate * dw, then w = w + v (the new v); "
                                  "return both, since the next step starts from the new v.")
                w = np.asarray(assert_shape(result[0], shape, name=f"{label}: next_w"), dtype=np.float64)
                v = np.asarray(assert_shape(result[1], shape, name=f"{label}: next_v"), dtype=np.float64)


@lru_cache(maxsize=1)
def mnist_splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The embedded 5,000 digits as float64 (N, 1, 28, 28) in [0, 1], split by ``datasets.split(seed=0)``."""
    from ..kernel import datasets

    return datasets.mnist_splits(np.float64)


def accuracy(params: dict, X: np.ndarray, y: np.ndarray, batch_size: int = 250) -> float:
    """Fraction of ``X`` that the reference network with ``params`` classifies as ``y`` (the grader's
    own forward pass: the trained weights are what the student's code produced)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a diverged model scores low
        preds = [np.argmax(reference_scores(X[s:s + batch_size], params, NET["filter_size"]), axis=1)
                 for s in range(0, len(X), batch_size)]
    return float(np.mean(np.concatenate(preds) == y))


def _trained(SmallConvNet: Callable, sgd_momentum: Callable, seed: int, X: np.ndarray, y: np.ndarray,
             **overrides: Any) -> tuple[dict, list[float]]:
    """The grader's recipe (:func:`autograder.recipes.small_convnet`) run where the student's code
    is, from grader-drawn He weights; the trained params (checked to be the network's) and losses."""
    params = _grader_params(rng(seed), expected_shapes(**NET), bias_scale=0.0)
    settings = {**TRAIN, **overrides}
    label = f"SmallConvNet trained by the grader's recipe ({settings['epochs']} epochs, batch {settings['batch_size']})"
    run = guarded(label, lambda: recipe("small_convnet", SmallConvNet, sgd_momentum, X, y, net=NET, params=params,
                                        seed=seed, time_limit=TIME_LIMIT, cpu_seconds=TIME_LIMIT, **settings))
    trained = run.get("params") if isinstance(run, dict) else None
    if not isinstance(trained, dict) or any(not isinstance(trained.get(k), np.ndarray) or
                                            trained[k].shape != shp for k, shp in expected_shapes(**NET).items()):
        raise CheckFailure(f"{label}: after training, model.params no longer holds {', '.join(PARAM_NAMES)} "
                           "with their shapes.\n  Hint: sgd_momentum returns next_w with the shape of w.")
    return {k: trained[k].astype(np.float64) for k in PARAM_NAMES}, [float(v) for v in run.get("losses", [])]


def train_small_convnet(SmallConvNet: Callable, sgd_momentum: Callable, seed: int = 0,
                        split: str = "val") -> dict:
    """Train with the grading recipe (``TRAIN``, ``NET``) on the training split and measure the
    accuracy on ``split`` ("val" or "holdout"). Returns dict(params, losses, accuracy, seconds)."""
    data = mnist_splits()
    start = time.perf_counter()
    with one_blas_thread():
        params, losses = _trained(SmallConvNet, sgd_momentum, seed, *data["train"])
        acc = accuracy(params, *data[split])
    return dict(params=params, losses=losses, accuracy=acc, seconds=time.perf_counter() - start)


def check_conv_net_training(SmallConvNet: Callable, sgd_momentum: Callable, seed: int | None = None,
                            n: int = 10) -> None:
    """Visible: sgd_momentum against torch.optim.SGD, and the network overfits 50 digits.
    With a seed: more SGD cases, then the full training recipe on the 3,500 training digits and an
    accuracy of at least THRESHOLD on the 750 held-out digits, measured by the grader's own forward pass."""
    check_sgd_momentum(sgd_momentum, seed=seed, n=n)
    with one_blas_thread():
        _check_training(SmallConvNet, sgd_momentum, seed)


def _check_training(SmallConvNet: Callable, sgd_momentum: Callable, seed: int | None) -> None:
    data = mnist_splits()
    X, y = data["train"]
    if seed is None:
        pick = rng(311).choice(len(X), size=50, replace=False)
        params, losses = _trained(SmallConvNet, sgd_momentum, 311, X[pick], y[pick], epochs=15,
                                  batch_size=25, learning_rate=0.05)
        acc = accuracy(params, X[pick], y[pick])
        if acc < 0.9:
            raise CheckFailure(
                f"SmallConvNet trained on 50 digits for 15 epochs: training accuracy {acc:.2f}, loss "
                f"{losses[0]:.3f} -> {losses[-1]:.3f}; a correct network fits them (accuracy >= 0.9).\n"
                "  Hint: if conv_net_loss passes, look at sgd_momentum; otherwise fix conv_net_loss first.")
        return
    start = time.perf_counter()
    params, losses = _trained(SmallConvNet, sgd_momentum, seed, X, y)
    acc = accuracy(params, *data["holdout"])
    seconds = time.perf_counter() - start
    if acc < THRESHOLD:
        raise CheckFailure(
            f"SmallConvNet trained on {len(X)} digits ({TRAIN['epochs']} epochs, batch {TRAIN['batch_size']}): "
            f"held-out accuracy {acc:.3f}, below the required {THRESHOLD:.2f} (loss {losses[0]:.3f} -> "
            f"{losses[-1]:.3f}).\n  Hint: a correct network reaches about 0.95; check every "
            "exercise above and sgd_momentum.")
    print(f"conv_net_training: held-out accuracy {acc:.3f} (required {THRESHOLD:.2f}), "
          f"trained in {seconds:.1f} s")
