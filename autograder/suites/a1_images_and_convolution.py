"""Checks for assignment a1_images_and_convolution: images as arrays, padding and 2-D convolution.

Every numeric result is compared with PyTorch (``autograder.reference``): ``F.conv2d`` for the
correlations, ``F.pad`` for padding, ``nn.Linear``/``nn.Conv2d`` for parameter counts and PyTorch's
own shape arithmetic for output sizes. Without ``seed`` a check runs its visible cases; with
``seed`` it also sweeps ``n`` random configurations (odd and non-square sizes, strides, paddings,
dilations) drawn from that seed — the hidden tests.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from .. import reference as ref
from ..kernel.checks import CheckFailure, assert_close, assert_equal, assert_raises, call, call_twice, case
from ..secret import seeds_for
from ..kernel.seed import rng
from . import forbid

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

# The worked example of the lecture (Dumoulin & Visin's guide to convolution arithmetic).
WORKED_IMAGE = np.array([[3, 3, 2, 1, 0],
                         [0, 0, 1, 3, 1],
                         [3, 1, 2, 2, 3],
                         [2, 0, 0, 2, 2],
                         [2, 0, 0, 0, 1]], dtype=np.float64)
WORKED_KERNEL = np.array([[0, 1, 2],
                          [2, 2, 0],
                          [0, 1, 2]], dtype=np.float64)
WORKED_OUTPUT = np.array([[12, 12, 17],
                          [10, 17, 19],
                          [9, 6, 14]], dtype=np.float64)

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
OUTLINE = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SOBEL_Y = SOBEL_X.T.copy()


def _shape(a: np.ndarray) -> str:
    return "×".join(str(s) for s in a.shape)


# ---------------------------------------------------------------------------------------------
# Sweeps of configurations
# ---------------------------------------------------------------------------------------------

def conv_configs(seed: int, n: int) -> Iterator[dict]:
    """``n`` random single-channel correlation configurations whose output is at least 1×1.

    Sizes 1..13 (odd, even, non-square), kernels 1..5 (non-square), stride 1..3, dilation 1..3.
    """
    g = rng(seed)
    made = 0
    while made < n:
        kh, kw = (int(v) for v in g.integers(1, 6, size=2))
        stride = int(g.integers(1, 4))
        dilation = int(g.integers(1, 4))
        h, w = (int(v) for v in g.integers(1, 14, size=2))
        if dilation * (kh - 1) + 1 > h or dilation * (kw - 1) + 1 > w:
            continue
        made += 1
        yield dict(image=g.standard_normal((h, w)), kernel=g.standard_normal((kh, kw)),
                   stride=stride, dilation=dilation)


# ---------------------------------------------------------------------------------------------
# 1. Layout: HWC <-> CHW
# ---------------------------------------------------------------------------------------------

def check_layout(hwc_to_chw: Callable, chw_to_hwc: Callable, seed: int | None = None, n: int = 20) -> None:
    """hwc_to_chw: (H, W, C) -> (C, H, W) and (N, H, W, C) -> (N, C, H, W); chw_to_hwc undoes it."""
    g = rng(1 if seed is None else seed)
    shapes = [(4, 5, 3), (2, 4, 5, 3), (3, 7, 1)]
    if seed is not None:
        shapes += [tuple(int(v) for v in g.integers(1, 9, size=int(g.integers(3, 5)))) for _ in range(n)]
    for shape in shapes:
        with case():
            image = g.integers(0, 256, size=shape, dtype=np.uint8)
            t = torch.from_numpy(image)
            perm = (2, 0, 1) if image.ndim == 3 else (0, 3, 1, 2)
            expected = t.permute(*perm).numpy()
            label = f"hwc_to_chw(image of shape {shape})"
            got, again = call_twice(hwc_to_chw, image, name=label, what="image")
            assert_close(got, expected, name=label, check_dtype=True,
                         hint="move the channel axis with a transpose (np.transpose / np.moveaxis); "
                              "a reshape keeps the memory order and scrambles the pixels.")
            again()
            back_label = f"chw_to_hwc(image of shape {expected.shape})"
            back = call(chw_to_hwc, expected.copy(), name=back_label)
            assert_close(back, image, name=back_label, check_dtype=True,
                         hint="chw_to_hwc must undo hwc_to_chw exactly.")


# ---------------------------------------------------------------------------------------------
# 2. dtype and range
# ---------------------------------------------------------------------------------------------

def _away_from_ties(g: np.random.Generator, shape: tuple, dtype) -> np.ndarray:
    """Floats x with 255*x at least 0.1 from a rounding tie, some below 0 and some above 1."""
    target = g.integers(-40, 296, size=shape)
    offset = g.uniform(-0.4, 0.4, size=shape)
    return ((target + offset) / 255.0).astype(dtype)


def check_dtype_range(to_float01: Callable, to_uint8: Callable, seed: int | None = None, n: int = 10) -> None:
    """to_float01: uint8 [0, 255] -> float32 [0, 1]; to_uint8: floats -> uint8, rounded and clipped."""
    g = rng(2 if seed is None else seed)
    shapes = [(4, 5, 3), (2, 3)]
    if seed is not None:
        shapes += [tuple(int(v) for v in g.integers(1, 9, size=int(g.integers(2, 5)))) for _ in range(n)]
    for shape in shapes:
        with case():
            image = g.integers(0, 256, size=shape, dtype=np.uint8)
            image.flat[0], image.flat[-1] = 0, 255  # both ends of the range
            expected = (torch.from_numpy(image).to(torch.float32) / 255).numpy()
            label = f"to_float01(uint8 image of shape {shape})"
            assert_close(call(to_float01, image, name=label), expected, name=label, check_dtype=True,
                         hint="divide by 255 (the largest uint8 value) and return float32.")
            for dtype in (np.float32, np.float64):
                x = _away_from_ties(g, shape, dtype)
                t = torch.from_numpy(x.astype(np.float64))
                expected8 = torch.clamp(torch.round(t * 255), 0, 255).to(torch.uint8).numpy()
                label8 = f"to_uint8({np.dtype(dtype).name} array of shape {shape} with values in [-0.16, 1.16])"
                assert_close(call(to_uint8, x, name=label8), expected8, name=label8, check_dtype=True,
                             hint="scale by 255, round to the nearest integer, clip to [0, 255] "
                                  "*before* converting: uint8 arithmetic wraps around (256 -> 0).")


# ---------------------------------------------------------------------------------------------
# 3. Grayscale
# ---------------------------------------------------------------------------------------------

def check_grayscale(rgb_to_gray: Callable, seed: int | None = None, n: int = 10) -> None:
    """rgb_to_gray: (..., 3) RGB -> (...) luma 0.299 R + 0.587 G + 0.114 B, as float64."""
    g = rng(3 if seed is None else seed)
    cases = [g.integers(0, 256, size=(4, 5, 3), dtype=np.uint8),
             np.eye(3, dtype=np.float64).reshape(1, 3, 3),  # pure red, green and blue pixels
             g.random((2, 3, 4, 3))]
    if seed is not None:
        for _ in range(n):
            shape = tuple(int(v) for v in g.integers(1, 9, size=int(g.integers(2, 4)))) + (3,)
            cases.append(g.integers(0, 256, size=shape, dtype=np.uint8) if g.random() < 0.5
                         else g.random(shape))
    for image in cases:
        with case():
            label = f"rgb_to_gray({image.dtype} image of shape {image.shape})"
            got, again = call_twice(rgb_to_gray, image, name=label, what="image")
            assert_close(got, ref.rgb_to_gray(image), name=label, rtol=1e-6, atol=1e-6, check_dtype="floating",
                         hint="weight the channels 0.299, 0.587, 0.114 (R, G, B: channel last) and sum; "
                              "a plain mean treats the eye as equally sensitive to all three.")
            again()


# ---------------------------------------------------------------------------------------------
# 4. Padding
# ---------------------------------------------------------------------------------------------

def check_pad2d(pad2d: Callable, seed: int | None = None, n: int = 30) -> None:
    """pad2d(image (H, W) or (C, H, W), pad p or (pad_h, pad_w), mode) against ``F.pad``."""
    g = rng(4 if seed is None else seed)
    cases = [((4, 5), 2, mode) for mode in ("zero", "reflect", "replicate")]
    cases += [((2, 3, 4), (1, 2), mode) for mode in ("zero", "reflect", "replicate")]
    cases += [((5, 3), (2, 0), "reflect")]
    if seed is not None:
        for _ in range(n):
            h, w = (int(v) for v in g.integers(1, 9, size=2))
            mode = str(g.choice(["zero", "reflect", "replicate"]))
            limit_h, limit_w = (h, w) if mode == "reflect" else (4, 4)  # reflect needs pad < size
            pad = (int(g.integers(0, limit_h)), int(g.integers(0, limit_w)))
            shape = (h, w) if g.random() < 0.5 else (int(g.integers(1, 4)), h, w)
            cases.append((shape, pad if g.random() < 0.7 else min(pad), mode))
    for i, (shape, pad, mode) in enumerate(cases):
        with case():
            image = g.integers(0, 100, size=shape).astype(np.float64)
            label = f"pad2d(image of shape {shape}, pad={pad!r}, mode={mode!r})"
            args = (image, pad) if i == 0 else (image, pad, mode)  # the first case by the default mode, "zero"
            if i == 0:
                label = f"pad2d(image of shape {shape}, pad={pad!r}) (the default mode, 'zero')"
            with forbid(np, "pad", "pad2d", "build the padded array yourself (slices or index arrays)."):
                got, again = call_twice(pad2d, *args, name=label, what="image")
            assert_close(got, ref.pad2d(image, pad, mode), name=label,
                         hint={"zero": "zeros on every side, pad_h rows top and bottom, pad_w columns left and right.",
                               "reflect": "reflect mirrors around the edge pixel without repeating it "
                                          "(row -1 is row 1), unlike NumPy's 'symmetric'.",
                               "replicate": "replicate repeats the edge pixel (row -1 is row 0)."}[mode])
            if np.asarray(got).dtype != image.dtype:
                raise CheckFailure(f"{label}: returned dtype {np.asarray(got).dtype}, expected the input's "
                                   f"dtype {image.dtype}.")
            again()
    assert_raises(pad2d, (np.zeros((3, 3)), 1, "circular"), {}, ValueError,
                  name="pad2d(image, 1, mode='circular')", why="an unknown mode must not silently pad with zeros")


# ---------------------------------------------------------------------------------------------
# 5. Output size
# ---------------------------------------------------------------------------------------------

VISIBLE_SIZES = [  # (size, kernel, stride, pad, dilation)
    (32, 3, 1, 1, 1), (7, 3, 2, 0, 1), (6, 3, 2, 0, 1), (10, 3, 1, 0, 2), (5, 3, 2, 1, 1),
    (224, 11, 4, 2, 1), (28, 5, 1, 0, 1), (2, 5, 1, 0, 1),
]


def check_conv_output_size(conv_output_size: Callable, seed: int | None = None, n: int = 300) -> None:
    """conv_output_size(size, kernel, stride, pad, dilation) == the size PyTorch's convolution gives."""
    cases = list(VISIBLE_SIZES)
    if seed is not None:
        g = rng(seed)
        cases += [tuple(int(v) for v in (g.integers(1, 40), g.integers(1, 8), g.integers(1, 5),
                                            g.integers(0, 4), g.integers(1, 4))) for _ in range(n)]
    for size, kernel, stride, pad, dilation in cases:
        with case():
            label = f"conv_output_size(size={size}, kernel={kernel}, stride={stride}, pad={pad}, dilation={dilation})"
            try:
                expected = ref.conv_output_size(size, kernel, stride, pad, dilation)
            except ValueError:
                assert_raises(conv_output_size, (size, kernel, stride, pad, dilation), {}, ValueError, name=label,
                              why="the dilated kernel does not fit in the padded input")
                continue
            defaults = (stride, pad, dilation) == (1, 0, 1)  # such a case calls it by its defaults
            args = (size, kernel) if defaults else (size, kernel, stride, pad, dilation)
            if defaults:
                label = f"conv_output_size(size={size}, kernel={kernel}) (stride, pad and dilation by their defaults)"
            got = call(conv_output_size, *args, name=label)
            assert_equal(got, expected, name=label,
                         hint="floor((size + 2*pad - dilation*(kernel - 1) - 1) / stride) + 1, with integer "
                              "division (//), padding on both sides, and the dilated kernel span.")


# ---------------------------------------------------------------------------------------------
# 6. Cross-correlation and 7. convolution
# ---------------------------------------------------------------------------------------------

def _check_correlation_like(fn: Callable, name: str, reference: Callable, seed: int | None, n: int,
                            hint: str) -> None:
    cases = [dict(image=WORKED_IMAGE, kernel=WORKED_KERNEL, stride=1, dilation=1)]
    g = rng(6)
    cases += [dict(image=g.standard_normal((6, 9)), kernel=g.standard_normal((2, 3)), stride=1, dilation=1),
              dict(image=g.standard_normal((7, 7)), kernel=g.standard_normal((3, 3)), stride=2, dilation=1),
              dict(image=g.standard_normal((7, 8)), kernel=g.standard_normal((3, 2)), stride=1, dilation=2),
              dict(image=g.standard_normal((9, 10)), kernel=g.standard_normal((2, 2)), stride=2, dilation=2)]
    if seed is not None:
        cases += list(conv_configs(seed, n))
    for cfg in cases:
        with case():
            image, kernel = cfg["image"], cfg["kernel"]
            label = (f"{name}(image {_shape(image)}, kernel {_shape(kernel)}, "
                     f"stride={cfg['stride']}, dilation={cfg['dilation']})")
            if cfg["stride"] == cfg["dilation"] == 1:  # called by its defaults
                got, again = call_twice(fn, image, kernel, name=label, what="the image or the kernel")
            else:
                got, again = call_twice(fn, image, kernel, stride=cfg["stride"], dilation=cfg["dilation"], name=label,
                                        what="the image or the kernel")
            expected = reference(image, kernel, stride=cfg["stride"], dilation=cfg["dilation"])
            assert_close(got, expected, name=label, hint=hint)
            again()


def check_correlate2d(correlate2d: Callable, seed: int | None = None, n: int = 40) -> None:
    """correlate2d(image (H, W), kernel (KH, KW), stride, dilation): "valid" cross-correlation vs F.conv2d."""
    got = call(correlate2d, WORKED_IMAGE, WORKED_KERNEL, name="correlate2d(worked example)")
    assert_close(got, WORKED_OUTPUT, name="correlate2d(worked 5×5 example from the lecture)",
                 hint="out[i, j] = sum over (u, v) of image[i + u, j + v] * kernel[u, v]; no flip.")
    _check_correlation_like(
        correlate2d, "correlate2d", ref.correlate2d, seed, n,
        hint="out[i, j] = sum_uv image[i*stride + u*dilation, j*stride + v*dilation] * kernel[u, v]; "
             "output size floor((H - dilation*(KH-1) - 1) / stride) + 1 per axis.")


def check_convolve2d(convolve2d: Callable, seed: int | None = None, n: int = 30) -> None:
    """convolve2d: true convolution, i.e. correlation with the kernel flipped along both axes."""
    _check_correlation_like(
        convolve2d, "convolve2d", ref.convolve2d, seed, n,
        hint="convolution flips the kernel along *both* axes (kernel[::-1, ::-1]) — "
             "not a transpose, not one axis — and then correlates.")


# ---------------------------------------------------------------------------------------------
# 8. Classic filters and 9. Sobel
# ---------------------------------------------------------------------------------------------

def check_filters(box_filter: Callable, gaussian_filter: Callable, sharpen_filter: Callable,
                  outline_filter: Callable, seed: int | None = None, n: int = 12) -> None:
    """box_filter(size), gaussian_filter(size, sigma), sharpen_filter(), outline_filter()."""
    g = rng(8 if seed is None else seed)
    box_sizes = [3, 5, 1]
    gauss = [(5, 1.0), (3, 0.85), (7, 2.5), (4, 1.0)]
    if seed is not None:
        box_sizes += [int(v) for v in g.integers(1, 10, size=n)]
        gauss += [(int(g.integers(1, 10)), float(g.uniform(0.4, 3.0))) for _ in range(n)]
    for size in box_sizes:
        with case():
            label = f"box_filter({size})"
            kernel = call(box_filter, size, name=label)
            assert_close(kernel, np.full((size, size), 1.0 / size**2), name=label,
                         hint="size×size, every entry 1/size² so that the weights sum to 1 "
                              "(correlating with it is a moving average, F.avg_pool2d with stride 1).")
    for size, sigma in gauss:
        with case():
            label = f"gaussian_filter({size}, sigma={sigma:g})"
            kernel = call(gaussian_filter, size, sigma, name=label)
            assert_close(kernel, ref.gaussian_kernel(size, sigma), name=label,
                         hint="exp(-(x² + y²) / (2 sigma²)) with x, y measured from the centre "
                              "(size - 1) / 2, then divide by the sum.")
    for fn, expected, label, why in ((sharpen_filter, SHARPEN, "sharpen_filter()",
                                      "5 at the centre, -1 at the four direct neighbours (sums to 1)"),
                                     (outline_filter, OUTLINE, "outline_filter()",
                                      "8 at the centre, -1 all around (sums to 0)")):
        with case():
            assert_close(call(fn, name=label), expected, name=label, hint=why)


def check_sobel(sobel_x: Callable, sobel_y: Callable, sobel_magnitude: Callable, seed: int | None = None,
                n: int = 8) -> None:
    """Sobel kernels (x: left-to-right brightening is positive; y: top-to-bottom) and the magnitude."""
    assert_close(call(sobel_x, name="sobel_x()"), SOBEL_X, name="sobel_x()",
                 hint="[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]: responds positively where brightness "
                      "increases to the right.")
    assert_close(call(sobel_y, name="sobel_y()"), SOBEL_Y, name="sobel_y()",
                 hint="the x kernel transposed: positive where brightness increases downwards.")
    g = rng(9 if seed is None else seed)
    images = [np.tile(np.arange(6.0), (5, 1)),  # a horizontal ramp: constant gradient 8 everywhere
              np.kron(np.eye(2), np.ones((3, 3))),  # checkerboard blocks: edges both ways
              g.standard_normal((6, 7))]
    if seed is not None:
        images += [g.standard_normal(tuple(int(v) for v in g.integers(3, 16, size=2))) for _ in range(n)]
    for image in images:
        with case():
            label = f"sobel_magnitude(image {_shape(image)})"
            got = call(sobel_magnitude, image.copy(), name=label)
            assert_close(got, ref.sobel_magnitude(image), name=label,
                         hint="sqrt(gx**2 + gy**2) where gx, gy are the 'valid' correlations with "
                              "sobel_x() and sobel_y(); the output is (H - 2, W - 2).")


# ---------------------------------------------------------------------------------------------
# 10. Parameter counts
# ---------------------------------------------------------------------------------------------

def check_param_counts(linear_params: Callable, conv2d_params: Callable, seed: int | None = None,
                       n: int = 30) -> None:
    """Parameter counts equal those of nn.Linear / nn.Conv2d (weights plus optional bias)."""
    lin = [(224 * 224 * 3, 1000, True), (224 * 224 * 3, 1000, False), (784, 10, True)]
    conv = [(3, 64, 3, True), (3, 96, 11, True), (64, 128, (3, 5), False), (1, 6, 5, True)]
    if seed is not None:
        g = rng(seed)
        lin += [(int(g.integers(1, 5000)), int(g.integers(1, 500)), bool(g.random() < 0.5)) for _ in range(n)]
        for _ in range(n):
            k = int(g.integers(1, 8)) if g.random() < 0.5 else (int(g.integers(1, 8)), int(g.integers(1, 8)))
            conv.append((int(g.integers(1, 257)), int(g.integers(1, 257)), k, bool(g.random() < 0.5)))
    for fin, fout, bias in lin:
        with case():
            label = f"linear_params({fin}, {fout}, bias={bias})"
            assert_equal(call(linear_params, fin, fout, name=label) if bias else
                         call(linear_params, fin, fout, bias=bias, name=label),
                         ref.linear_params(fin, fout, bias), name=label,
                         hint="one weight per (input, output) pair, plus one bias per output when bias=True.")
    for cin, cout, k, bias in conv:
        with case():
            label = f"conv2d_params({cin}, {cout}, kernel_size={k!r}, bias={bias})"
            assert_equal(call(conv2d_params, cin, cout, k, name=label) if bias else
                         call(conv2d_params, cin, cout, k, bias=bias, name=label),
                         ref.conv2d_params(cin, cout, k, bias), name=label,
                         hint="each of the out_channels filters has in_channels × KH × KW weights (an int "
                              "kernel_size means KH = KW), plus one bias per filter when bias=True.")
