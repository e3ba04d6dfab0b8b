"""autograder.reference: are the PyTorch references right, on the right device, with TF32 off?

Each reference is compared with a direct NumPy computation written here, over Hypothesis-drawn
shapes, strides, paddings and dilations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autograder import reference as ref
from autograder.kernel.checks import assert_close

SETTINGS = settings(deadline=None, max_examples=50)


def loops_correlate(image, kernel, stride, dilation, pad):
    """Textbook definition, slow and obvious."""
    image = np.pad(image, pad)
    H, W = image.shape
    KH, KW = kernel.shape
    oh = (H - dilation * (KH - 1) - 1) // stride + 1
    ow = (W - dilation * (KW - 1) - 1) // stride + 1
    out = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            for u in range(KH):
                for v in range(KW):
                    out[i, j] += image[i * stride + u * dilation, j * stride + v * dilation] * kernel[u, v]
    return out


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride, dilation, pad = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    assume(h + 2 * pad >= dilation * (kh - 1) + 1 and w + 2 * pad >= dilation * (kw - 1) + 1)
    seed = draw(st.integers(0, 2**31))
    g = np.random.default_rng(seed)
    return g.standard_normal((h, w)), g.standard_normal((kh, kw)), stride, dilation, pad


def test_device_is_cuda_when_available_else_cpu(monkeypatch):
    monkeypatch.delenv("AUTOGRADER_DEVICE", raising=False)
    assert ref.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("AUTOGRADER_DEVICE", "cpu")
    assert ref.device().type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="only meaningful without a GPU")
def test_asking_for_cuda_without_one_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("AUTOGRADER_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="sees no CUDA device"):
        ref.device()


def test_tf32_is_off():
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert torch.get_float32_matmul_precision() == "highest"


def test_tolerance_uses_the_reference_device():
    assert ref.tolerance(np.float64) == ref.TOLERANCES[(ref.device().type, "float64")]


@given(conv_case())
@SETTINGS
def test_correlate2d_matches_loops(case):
    image, kernel, stride, dilation, pad = case
    assert_close(ref.correlate2d(image, kernel, stride, dilation, pad),
                 loops_correlate(image, kernel, stride, dilation, pad), name="ref.correlate2d")


@given(conv_case())
@SETTINGS
def test_convolve2d_is_correlation_with_the_flipped_kernel(case):
    image, kernel, stride, dilation, pad = case
    assert_close(ref.convolve2d(image, kernel, stride, dilation, pad),
                 loops_correlate(image, kernel[::-1, ::-1], stride, dilation, pad), name="ref.convolve2d")


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2),
       st.integers(0, 2**31))
@SETTINGS
def test_conv2d_multichannel_with_bias(n, c, f, stride, pad, seed):
    g = np.random.default_rng(seed)
    x, w, b = g.standard_normal((n, c, 7, 6)), g.standard_normal((f, c, 3, 2)), g.standard_normal(f)
    expected = np.zeros_like(ref.conv2d(x, w, b, stride=stride, pad=pad))
    for i in range(n):
        for k in range(f):
            expected[i, k] = b[k] + sum(loops_correlate(x[i, ch], w[k, ch], stride, 1, pad) for ch in range(c))
    assert_close(ref.conv2d(x, w, b, stride=stride, pad=pad), expected, name="ref.conv2d")


@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 8), st.integers(0, 8),
       st.sampled_from(["zero", "reflect", "replicate"]), st.booleans())
@SETTINGS
def test_pad2d_matches_numpy(h, w, ph, pw, mode, channels):
    if mode == "reflect":
        assume(ph < h and pw < w)
    x = np.arange(h * w * (2 if channels else 1), dtype=np.float64).reshape(((2,) if channels else ()) + (h, w))
    widths = [(0, 0)] * (x.ndim - 2) + [(ph, ph), (pw, pw)]
    np_mode = {"zero": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
    assert_close(ref.pad2d(x, (ph, pw), mode), np.pad(x, widths, mode=np_mode), name="ref.pad2d")


def test_pad2d_unknown_mode():
    with pytest.raises(ValueError, match="unknown padding mode"):
        ref.pad2d(np.zeros((3, 3)), 1, "circular")


@given(st.integers(1, 50), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4), st.integers(1, 4))
@SETTINGS
def test_conv_output_size_is_the_formula(size, kernel, stride, pad, dilation):
    span = dilation * (kernel - 1) + 1
    if size + 2 * pad < span:
        with pytest.raises(ValueError):
            ref.conv_output_size(size, kernel, stride, pad, dilation)
    else:
        assert ref.conv_output_size(size, kernel, stride, pad, dilation) == (size + 2 * pad - span) // stride + 1


def test_rgb_to_gray_weights():
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    assert_close(ref.rgb_to_gray(pixels), np.array([[0.299, 0.587, 0.114]]) * 255, name="gray")


@given(st.integers(1, 9), st.floats(0.3, 4.0))
@SETTINGS
def test_gaussian_kernel_is_normalised_symmetric_and_peaked(size, sigma):
    k = ref.gaussian_kernel(size, sigma)
    assert k.shape == (size, size) and k.sum() == pytest.approx(1.0)
    assert_close(k, k[::-1, ::-1], name="symmetry")
    assert_close(k, k.T, name="symmetry")
    c = (size - 1) // 2
    assert k[c, c] == pytest.approx(k.max())


def test_sobel_magnitude_of_a_ramp():
    ramp = np.tile(np.arange(6.0), (5, 1))
    assert_close(ref.sobel_magnitude(ramp), np.full((3, 4), 8.0), name="sobel")


@pytest.mark.parametrize("fin, fout, bias, expected", [(224 * 224 * 3, 1000, False, 150_528_000),
                                                       (224 * 224 * 3, 1000, True, 150_529_000)])
def test_linear_params(fin, fout, bias, expected):
    assert ref.linear_params(fin, fout, bias) == expected


def test_conv2d_params():
    assert ref.conv2d_params(3, 64, 3) == 64 * 3 * 9 + 64
    assert ref.conv2d_params(64, 128, (3, 5), bias=False) == 128 * 64 * 15
    assert ref.conv2d_params(32, 32, 3, bias=False, groups=32) == 32 * 9  # depthwise


def test_results_are_float64_numpy_on_the_cpu():
    out = ref.correlate2d(np.ones((4, 4), np.float32), np.ones((2, 2), np.float32))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64


def test_read_only_input_is_accepted_silently(recwarn):
    image = np.ones((5, 5))
    image.flags.writeable = False
    ref.correlate2d(image, np.ones((3, 3)))
    assert not [w for w in recwarn if "not writable" in str(w.message)]


@given(conv_case(), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31))
@SETTINGS
def test_conv2d_backward_matches_loops(case, n, f, seed):
    """dx, dw, db from autograd equal the textbook sums for random configurations."""
    _, kernel, stride, dilation, pad = case
    g = np.random.default_rng(seed)
    kh, kw = kernel.shape
    x, w, b = g.standard_normal((n, 2, 9, 8)), g.standard_normal((f, 2, kh, kw)), g.standard_normal(f)
    assume(9 + 2 * pad >= dilation * (kh - 1) + 1 and 8 + 2 * pad >= dilation * (kw - 1) + 1)
    out = ref.conv2d(x, w, b, stride, pad, dilation)
    dout = g.standard_normal(out.shape)
    dx, dw, db = ref.conv2d_backward(x, w, b, dout, stride, pad, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ex, ew = np.zeros_like(xp), np.zeros_like(w)
    for i in range(n):
        for k in range(f):
            for oh in range(out.shape[2]):
                for ow in range(out.shape[3]):
                    rows = slice(oh * stride, oh * stride + dilation * (kh - 1) + 1, dilation)
                    cols = slice(ow * stride, ow * stride + dilation * (kw - 1) + 1, dilation)
                    ex[i, :, rows, cols] += dout[i, k, oh, ow] * w[k]
                    ew[k] += dout[i, k, oh, ow] * xp[i, :, rows, cols]
    assert_close(dx, ex[:, :, pad:pad + 9, pad:pad + 8], name="dx")
    assert_close(dw, ew, name="dw")
    assert_close(db, dout.sum(axis=(0, 2, 3)), name="db")


@given(conv_case(), st.integers(1, 2), st.integers(1, 3), st.integers(0, 2**31))
@SETTINGS
def test_unfold_is_im2col_and_fold_its_adjoint(case, n, c, seed):
    """unfold @ weights is the convolution; <unfold(x), y> == <x, fold(y)> (fold is the adjoint)."""
    image, kernel, stride, dilation, pad = case
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, c) + image.shape)
    w = g.standard_normal((3, c) + kernel.shape)
    cols = ref.unfold(x, kernel.shape, stride, pad, dilation)
    out = ref.conv2d(x, w, None, stride, pad, dilation)
    assert cols.shape == (c * kernel.size, n * out.shape[2] * out.shape[3])
    assert_close((w.reshape(3, -1) @ cols).reshape(3, n, *out.shape[2:]).transpose(1, 0, 2, 3), out, name="im2col")
    y = g.standard_normal(cols.shape)
    folded = ref.fold(y, x.shape, kernel.shape, stride, pad, dilation)
    assert folded.shape == x.shape
    assert np.sum(cols * y) == pytest.approx(np.sum(x * folded), rel=1e-9, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Layers of assignment a3: pooling, ReLU, affine, global average pooling, cross-entropy, SGD
# ---------------------------------------------------------------------------------------------

@st.composite
def pool_case(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw, stride = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    h, w = draw(st.integers(ph, 10)), draw(st.integers(pw, 10))
    g = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = g.standard_normal((n, c, h, w))  # continuous values: no ties in a window
    oh, ow = (h - ph) // stride + 1, (w - pw) // stride + 1
    return x, ph, pw, stride, g.standard_normal((n, c, oh, ow))


def loops_pool(x, ph, pw, stride, dout, kind):
    """Pooling and its gradient by the definition: one window at a time, accumulating."""
    n, c, oh, ow = dout.shape
    out, dx = np.zeros(dout.shape), np.zeros_like(x)
    for i in range(oh):
        for j in range(ow):
            r, s = i * stride, j * stride
            for a in range(n):
                for b in range(c):
                    win = x[a, b, r:r + ph, s:s + pw]
                    if kind == "max":
                        out[a, b, i, j] = win.max()
                        u, v = np.unravel_index(np.argmax(win), win.shape)
                        dx[a, b, r + u, s + v] += dout[a, b, i, j]
                    else:
                        out[a, b, i, j] = win.mean()
                        dx[a, b, r:r + ph, s:s + pw] += dout[a, b, i, j] / (ph * pw)
    return out, dx


@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_case())
@SETTINGS
def test_pooling_and_its_gradient_match_loops(kind, case):
    x, ph, pw, stride, dout = case
    out, dx = loops_pool(x, ph, pw, stride, dout, kind)
    forward, vjp = (ref.max_pool2d, ref.max_pool2d_vjp) if kind == "max" else (ref.avg_pool2d, ref.avg_pool2d_vjp)
    assert_close(forward(x, (ph, pw), stride), out, name=f"ref.{kind}_pool2d")
    assert_close(vjp(x, (ph, pw), stride, dout), dx, name=f"ref.{kind}_pool2d_vjp")


def test_pool_stride_defaults_to_the_kernel():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    assert_close(ref.max_pool2d(x, 2), np.array([[[[5.0, 7.0], [13.0, 15.0]]]]), name="max_pool2d")
    assert_close(ref.avg_pool2d(x, 2), np.array([[[[2.5, 4.5], [10.5, 12.5]]]]), name="avg_pool2d")


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.integers(0, 2**31))
@SETTINGS
def test_relu_and_its_gradient(shape, seed):
    g = np.random.default_rng(seed)
    x, dout = g.standard_normal(shape), g.standard_normal(shape)
    assert_close(ref.relu(x), np.maximum(x, 0), name="ref.relu")
    assert_close(ref.relu_vjp(x, dout), dout * (x > 0), name="ref.relu_vjp")


@given(st.integers(1, 4), st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(1, 5),
       st.integers(0, 2**31))
@SETTINGS
def test_affine_and_its_gradients(n, rest, m, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal([n, *rest])
    d = int(np.prod(rest))
    w, b, dout = g.standard_normal((d, m)), g.standard_normal(m), g.standard_normal((n, m))
    rows = x.reshape(n, d)
    assert_close(ref.affine(x, w, b), rows @ w + b, name="ref.affine")
    dx, dw, db = ref.affine_vjp(x, w, b, dout)
    assert_close(dx, (dout @ w.T).reshape(x.shape), name="ref.affine_vjp dx")
    assert_close(dw, rows.T @ dout, name="ref.affine_vjp dw")
    assert_close(db, dout.sum(axis=0), name="ref.affine_vjp db")


@given(st.lists(st.integers(1, 6), min_size=4, max_size=4), st.integers(0, 2**31))
@SETTINGS
def test_global_avg_pool_and_its_gradient(shape, seed):
    g = np.random.default_rng(seed)
    x = g.standard_normal(shape)
    dout = g.standard_normal(shape[:2])
    assert_close(ref.global_avg_pool(x), x.mean(axis=(2, 3)), name="ref.global_avg_pool")
    expected = np.broadcast_to(dout[:, :, None, None] / (shape[2] * shape[3]), x.shape)
    assert_close(ref.global_avg_pool_vjp(x, dout), expected, name="ref.global_avg_pool_vjp")


@given(st.integers(1, 6), st.integers(2, 8), st.floats(0.1, 5.0), st.integers(0, 2**31))
@SETTINGS
def test_cross_entropy_is_the_mean_negative_log_softmax(n, k, scale, seed):
    from autograder.kernel.checks import numeric_gradient

    g = np.random.default_rng(seed)
    x, y = g.standard_normal((n, k)) * scale, g.integers(0, k, size=n)

    def loss(s):
        s = s - s.max(axis=1, keepdims=True)
        return float(-(s[np.arange(n), y] - np.log(np.exp(s).sum(axis=1))).mean())

    value, dx = ref.cross_entropy(x, y)
    assert value == pytest.approx(loss(x), rel=1e-12)
    assert_close(dx, numeric_gradient(loss, x.copy()), name="ref.cross_entropy dx", rtol=1e-6, atol=1e-8)


def test_cross_entropy_is_stable_for_large_scores():
    value, dx = ref.cross_entropy(np.array([[1000.0, 0.0], [0.0, 1000.0]]), np.array([0, 0]))
    assert value == pytest.approx(500.0) and np.isfinite(dx).all()


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), st.floats(0.001, 1.0), st.floats(0.0, 0.99),
       st.integers(0, 6), st.integers(0, 2**31))
@SETTINGS
def test_sgd_momentum_steps_follow_the_velocity_recurrence(shape, lr, momentum, steps, seed):
    g = np.random.default_rng(seed)
    w0 = g.standard_normal(shape)
    before = w0.copy()
    grads = [g.standard_normal(shape) for _ in range(steps)]
    got = ref.sgd_momentum_steps(w0, grads, lr, momentum)
    w, v = w0.copy(), np.zeros(shape)
    assert got.shape == (steps, *shape)
    for t, dw in enumerate(grads):
        v = momentum * v - lr * dw
        w = w + v
        assert_close(got[t], w, name=f"step {t + 1}", rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(w0, before)
