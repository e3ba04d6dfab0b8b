"""autograder.layers: is the provided NumPy convolution PyTorch's conv2d, forward and backward?

conv_forward is compared with ``F.conv2d`` and conv_backward with autograd's gradients of
``sum(conv2d(x, w, b) * dout)``, all in float64, over Hypothesis-drawn batch sizes, channels,
filters, kernel sizes (non-square), strides and paddings.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autograder.kernel.checks import assert_close
from autograder.kernel.layers import conv_backward, conv_forward

SETTINGS = settings(deadline=None, max_examples=60)


@st.composite
def conv_case(draw):
    n, c, f = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, pad = draw(st.integers(1, 3)), draw(st.integers(0, 3))
    h, w = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    assume(h + 2 * pad >= kh and w + 2 * pad >= kw)
    g = np.random.default_rng(draw(st.integers(0, 2**31)))
    return (g.standard_normal((n, c, h, w)), g.standard_normal((f, c, kh, kw)), g.standard_normal(f),
            stride, pad)


def torch_conv(x, w, b, stride, pad, dout):
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride=stride, padding=pad)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@given(conv_case())
@SETTINGS
def test_conv_forward_and_backward_match_torch(case):
    x, w, b, stride, pad = case
    x_before, w_before = x.copy(), w.copy()
    out, cache = conv_forward(x, w, b, stride=stride, pad=pad)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    expected, dx_t, dw_t, db_t = torch_conv(x, w, b, stride, pad, dout)
    assert_close(out, expected, name="conv_forward")
    dx, dw, db = conv_backward(dout, cache)
    assert_close(dx, dx_t, name="conv_backward dx")
    assert_close(dw, dw_t, name="conv_backward dw")
    assert_close(db, db_t, name="conv_backward db")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


def test_output_size_formula():
    out, _ = conv_forward(np.zeros((2, 3, 28, 28)), np.zeros((8, 3, 5, 5)), np.zeros(8), stride=1, pad=2)
    assert out.shape == (2, 8, 28, 28)
    out, _ = conv_forward(np.zeros((1, 1, 7, 6)), np.zeros((2, 1, 3, 2)), np.zeros(2), stride=2, pad=0)
    assert out.shape == (1, 2, 3, 3)


def test_float32_stays_float32():
    out, cache = conv_forward(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32),
                              np.zeros(1, np.float32), pad=1)
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv_backward(np.ones_like(out), cache))


@pytest.mark.parametrize("args, match", [
    ((np.zeros((1, 2, 5, 5)), np.zeros((1, 3, 3, 3)), np.zeros(1)), "channels"),
    ((np.zeros((1, 1, 5, 5)), np.zeros((2, 1, 3, 3)), np.zeros(3)), "channels"),
    ((np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)), np.zeros(1)), "does not fit"),
    ((np.zeros((5, 5)), np.zeros((1, 1, 3, 3)), np.zeros(1)), "expects"),
])
def test_bad_shapes_are_clear_errors(args, match):
    with pytest.raises(ValueError, match=match):
        conv_forward(*args)


def test_bad_dout_shape_is_a_clear_error():
    out, cache = conv_forward(np.zeros((2, 1, 5, 5)), np.zeros((3, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="dout has shape"):
        conv_backward(np.zeros((2, 3, 4, 4)), cache)


def test_numpy_only():
    import autograder.kernel.layers as layers

    source = open(layers.__file__).read()
    assert "import torch" not in source and "scipy" not in source


def test_fast_enough_to_train_on_mnist():
    """A batch of 50 digits through 8 filters 5×5, forward and backward, in well under a second."""
    import time

    g = np.random.default_rng(0)
    x, w, b = g.random((50, 1, 28, 28)), g.standard_normal((8, 1, 5, 5)), np.zeros(8)
    start = time.perf_counter()
    for _ in range(5):
        out, cache = conv_forward(x, w, b, stride=1, pad=2)
        conv_backward(out, cache)
    assert (time.perf_counter() - start) / 5 < 0.5


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 11), st.integers(1, 11), st.integers(1, 4),
       st.integers(1, 4), st.integers(1, 4), st.integers(0, 2**31))
@settings(deadline=None, max_examples=60)
def test_fast_max_pool_matches_torch(n, c, h, w, ph, pw, stride, seed):
    """Forward and backward of the vectorised max pooling against F.max_pool2d and autograd."""
    from autograder import reference as ref
    from autograder.fast_pool import max_pool_backward_fast, max_pool_forward_fast

    assume(h >= ph and w >= pw)
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, c, h, w))  # continuous values: no ties
    out, cache = max_pool_forward_fast(x, ph, pw, stride)
    assert_close(out, ref.max_pool2d(x, (ph, pw), stride), name="max_pool_forward_fast")
    dout = g.standard_normal(out.shape)
    assert_close(max_pool_backward_fast(dout, cache), ref.max_pool2d_vjp(x, (ph, pw), stride, dout),
                 name="max_pool_backward_fast")
