"""Realistic wrong answers for a1_images_and_convolution."""

from . import WrongAnswer as W

# convolve2d and sobel_magnitude call the student's correlate2d.
DEPENDS = {"correlate2d": ("convolve2d", "sobel")}

_HWC = "    if image.ndim == 3:\n        return np.transpose(image, (2, 0, 1))\n    return np.transpose(image, (0, 3, 1, 2))"
_REFLECT = ("        rows = np.abs(np.arange(-pad_h, H + pad_h))\n"
            "        rows = np.where(rows > H - 1, 2 * (H - 1) - rows, rows)\n"
            "        cols = np.abs(np.arange(-pad_w, W + pad_w))\n"
            "        cols = np.where(cols > W - 1, 2 * (W - 1) - cols, cols)")
_SYMMETRIC = ("        rows = np.arange(-pad_h, H + pad_h)\n"
              "        rows = np.where(rows < 0, -rows - 1, np.where(rows > H - 1, 2 * H - 1 - rows, rows))\n"
              "        cols = np.arange(-pad_w, W + pad_w)\n"
              "        cols = np.where(cols < 0, -cols - 1, np.where(cols > W - 1, 2 * W - 1 - cols, cols))")
_H_OUT = "H_out = (H - dilation * (KH - 1) - 1) // stride + 1"
_W_OUT = "W_out = (W - dilation * (KW - 1) - 1) // stride + 1"

WRONG_ANSWERS = [
    # 1. layout
    W("layout", "reshape instead of transpose",
      (("return np.transpose(image, (2, 0, 1))",
        "return image.reshape(image.shape[2], image.shape[0], image.shape[1])"),), ("hwc_to_chw",)),
    W("layout", "height and width swapped",
      (("return np.transpose(image, (2, 0, 1))", "return np.transpose(image, (2, 1, 0))"),), ("hwc_to_chw",)),
    W("layout", "batch axis treated as height (moveaxis of the last axis to the front)",
      ((_HWC, "    return np.moveaxis(image, -1, 0)"),), ("hwc_to_chw",)),
    W("layout", "chw_to_hwc repeats the forward permutation",
      (("return np.transpose(image, (1, 2, 0))", "return np.transpose(image, (2, 0, 1))"),), ("chw_to_hwc",)),
    # 2. dtype and range
    W("dtype_range", "divides by 256", (("np.float32(255)", "np.float32(256)"),), ("to_float01",)),
    W("dtype_range", "returns float64",
      (("return image.astype(np.float32) / np.float32(255)", "return image / 255"),), ("to_float01",)),
    W("dtype_range", "no clipping: uint8 wraps around",
      (("np.clip(np.round(np.asarray(x, dtype=np.float64) * 255), 0, 255).astype(np.uint8)",
        "(np.round(np.asarray(x, dtype=np.float64) * 255) % 256).astype(np.uint8)"),), ("to_uint8",)),
    W("dtype_range", "truncates instead of rounding",
      (("np.clip(np.round(np.asarray(x, dtype=np.float64) * 255), 0, 255)",
        "np.clip(np.asarray(x, dtype=np.float64) * 255, 0, 255)"),), ("to_uint8",)),
    # 3. grayscale
    W("grayscale", "plain mean of the channels",
      (("return np.asarray(image, dtype=np.float64) @ weights",
        "return np.asarray(image, dtype=np.float64).mean(axis=-1)"),), ("rgb_to_gray",)),
    W("grayscale", "weights in BGR order",
      (("np.array([0.299, 0.587, 0.114])", "np.array([0.114, 0.587, 0.299])"),), ("rgb_to_gray",)),
    W("grayscale", "casts back to the input dtype",
      (("return np.asarray(image, dtype=np.float64) @ weights",
        "return (np.asarray(image, dtype=np.float64) @ weights).astype(np.asarray(image).dtype)"),),
      ("rgb_to_gray",)),
    # 4. padding
    W("pad2d", "reflect repeats the edge pixel (NumPy's 'symmetric')", ((_REFLECT, _SYMMETRIC),), ("pad2d",)),
    W("pad2d", "pad_h and pad_w swapped",
      (("pad_h, pad_w = (pad, pad)", "pad_w, pad_h = (pad, pad)"),), ("pad2d",)),
    W("pad2d", "zero padding on one side only",
      (("(H + 2 * pad_h, W + 2 * pad_w)", "(H + pad_h, W + pad_w)"),), ("pad2d",)),
    W("pad2d", "unknown modes silently pad with zeros",
      (('if mode == "zero":', 'if mode not in ("reflect", "replicate"):'),), ("pad2d",)),
    W("pad2d", "replicate clips indices to H instead of H - 1",
      (("np.clip(np.arange(-pad_h, H + pad_h), 0, H - 1)", "np.clip(np.arange(-pad_h, H + pad_h), 0, H)"),),
      ("pad2d",)),
    # 5. output size
    W("conv_output_size", "ceil instead of floor",
      (("return (size + 2 * pad - span) // stride + 1", "return -(-(size + 2 * pad - span) // stride) + 1"),),
      ("conv_output_size",)),
    W("conv_output_size", "dilation ignored",
      (("span = dilation * (kernel - 1) + 1", "span = kernel"),), ("conv_output_size",)),
    W("conv_output_size", "padding counted on one side",
      (("return (size + 2 * pad - span) // stride + 1", "return (size + pad - span) // stride + 1"),),
      ("conv_output_size",)),
    W("conv_output_size", "true division returns a float",
      (("// stride + 1", "/ stride + 1"),), ("conv_output_size",)),
    W("conv_output_size", "missing + 1",
      (("return (size + 2 * pad - span) // stride + 1", "return (size + 2 * pad - span) // stride"),),
      ("conv_output_size",)),
    W("conv_output_size", "no error when the kernel does not fit",
      (("    if size + 2 * pad < span:\n        raise ValueError(f\"kernel span {span} is larger than the "
        "padded input {size + 2 * pad}\")\n", ""),), ("conv_output_size",)),
    # 6. cross-correlation
    W("correlate2d", "kernel flipped (that is convolution)",
      (("out[i, j] = np.sum(window * kernel)", "out[i, j] = np.sum(window * kernel[::-1, ::-1])"),),
      ("correlate2d",)),
    W("correlate2d", "stride ignored in the output size",
      ((_H_OUT, "H_out = H - dilation * (KH - 1)"), (_W_OUT, "W_out = W - dilation * (KW - 1)")),
      ("correlate2d",)),
    W("correlate2d", "output one row and column short (missing + 1)",
      ((_H_OUT, _H_OUT[:-4]), (_W_OUT, _W_OUT[:-4])), ("correlate2d",)),
    W("correlate2d", "dilation ignored inside the window",
      (("window = image[r:r + dilation * (KH - 1) + 1:dilation, c:c + dilation * (KW - 1) + 1:dilation]",
        "window = image[r:r + KH, c:c + KW]"),), ("correlate2d",)),
    W("correlate2d", "window start not scaled by the stride",
      (("r, c = i * stride, j * stride", "r, c = i, j"),), ("correlate2d",)),
    W("correlate2d", "rows and columns swapped",
      (("r, c = i * stride, j * stride", "r, c = j * stride, i * stride"),), ("correlate2d",)),
    # 7. convolution
    W("convolve2d", "kernel not flipped", (("kernel[::-1, ::-1]", "kernel"),), ("convolve2d",)),
    W("convolve2d", "kernel flipped along one axis only", (("kernel[::-1, ::-1]", "kernel[::-1]"),), ("convolve2d",)),
    W("convolve2d", "kernel transposed instead of flipped", (("kernel[::-1, ::-1]", "kernel.T"),), ("convolve2d",)),
    # 8. filters
    W("filters", "box filter not normalised",
      (("np.full((size, size), 1.0 / size**2)", "np.ones((size, size))"),), ("box_filter",)),
    W("filters", "box filter divided by size, not size squared",
      (("np.full((size, size), 1.0 / size**2)", "np.full((size, size), 1.0 / size)"),), ("box_filter",)),
    W("filters", "Gaussian not normalised", (("return g / g.sum()", "return g"),), ("gaussian_filter",)),
    W("filters", "Gaussian centred on the corner",
      (("r = np.arange(size) - (size - 1) / 2", "r = np.arange(size)"),), ("gaussian_filter",)),
    W("filters", "Gaussian centre at size // 2 (wrong for even sizes)",
      (("r = np.arange(size) - (size - 1) / 2", "r = np.arange(size) - size // 2"),), ("gaussian_filter",)),
    W("filters", "sigma not squared", (("(2 * sigma**2)", "(2 * sigma)"),), ("gaussian_filter",)),
    W("filters", "sharpen with 4 at the centre", (("[-1, 5, -1]", "[-1, 4, -1]"),), ("sharpen_filter",)),
    W("filters", "outline with 9 at the centre", (("[-1, 8, -1]", "[-1, 9, -1]"),), ("outline_filter",)),
    # 9. Sobel
    W("sobel", "sobel_y not transposed", (("return sobel_x().T", "return sobel_x()"),), ("sobel_y",)),
    W("sobel", "sobel_x with the sign flipped",
      (("[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]", "[[1, 0, -1], [2, 0, -2], [1, 0, -1]]"),), ("sobel_x",)),
    W("sobel", "magnitude as |gx| + |gy|",
      (("np.sqrt(gx**2 + gy**2)", "np.abs(gx) + np.abs(gy)"),), ("sobel_magnitude",)),
    W("sobel", "magnitude from gx alone", (("np.sqrt(gx**2 + gy**2)", "np.abs(gx)"),), ("sobel_magnitude",)),
    W("sobel", "square root forgotten", (("np.sqrt(gx**2 + gy**2)", "gx**2 + gy**2"),), ("sobel_magnitude",)),
    # 10. parameter counts
    W("param_counts", "bias forgotten in the linear layer",
      (("return in_features * out_features + (out_features if bias else 0)",
        "return in_features * out_features"),), ("linear_params",)),
    W("param_counts", "bias counted even when bias=False",
      (("(out_features if bias else 0)", "out_features"),), ("linear_params",)),
    W("param_counts", "convolution ignores in_channels",
      (("out_channels * in_channels * kh * kw", "out_channels * kh * kw"),), ("conv2d_params",)),
    W("param_counts", "one kernel dimension only",
      (("out_channels * in_channels * kh * kw", "out_channels * in_channels * kh"),), ("conv2d_params",)),
    W("param_counts", "one bias per weight, not per filter",
      (("(out_channels if bias else 0)", "(out_channels * in_channels if bias else 0)"),), ("conv2d_params",)),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "correlate2d: window start not scaled by the stride"
