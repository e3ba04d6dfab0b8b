"""Realistic wrong answers for a2_conv_layer."""

from . import WrongAnswer as W

# The backward tests run the student's own forward (for its cache); the fast layer uses im2col/col2im.
DEPENDS = {
    "conv_forward_naive": ("conv_backward_naive",),
    "im2col": ("conv_forward_fast", "conv_backward_fast"),
    "col2im": ("conv_backward_fast",),
    "conv_forward_fast": ("conv_backward_fast",),
}

_H_OUT = "H_out = (H + 2 * pad - dilation * (KH - 1) - 1) // stride + 1"
_W_OUT = "W_out = (W + 2 * pad - dilation * (KW - 1) - 1) // stride + 1"
_NAIVE_WINDOW = ("window = xp[n, :, r:r + dilation * (KH - 1) + 1:dilation, "
                 "c:c + dilation * (KW - 1) + 1:dilation]")
_PATCH = "patch = xp[:, :, r:r + stride * (H_out - 1) + 1:stride, c:c + stride * (W_out - 1) + 1:stride]"
_SCATTER = "xp[:, :, r:r + stride * (H_out - 1) + 1:stride, c:c + stride * (W_out - 1) + 1:stride] += \\"

WRONG_ANSWERS = [
    # 1. naive forward
    W("conv_forward_naive", "bias forgotten",
      (("out[n, f, i, j] = np.sum(window * w[f]) + b[f]", "out[n, f, i, j] = np.sum(window * w[f])"),),
      ("conv_forward_naive",)),
    W("conv_forward_naive", "kernel flipped (true convolution)",
      (("np.sum(window * w[f])", "np.sum(window * w[f, :, ::-1, ::-1])"),), ("conv_forward_naive",)),
    W("conv_forward_naive", "padding counted once in the output size",
      ((_H_OUT, _H_OUT.replace("2 * pad", "pad")), (_W_OUT, _W_OUT.replace("2 * pad", "pad"))),
      ("conv_forward_naive",)),
    W("conv_forward_naive", "dilation ignored in the window",
      ((_NAIVE_WINDOW, "window = xp[n, :, r:r + KH, c:c + KW]"),), ("conv_forward_naive",)),
    W("conv_forward_naive", "window start not scaled by the stride",
      (("r, c = i * stride, j * stride\n                    window", "r, c = i, j\n                    window"),),
      ("conv_forward_naive",)),
    W("conv_forward_naive", "the unpadded input is used",
      (("window = xp[n", "window = x[n"),), ("conv_forward_naive",)),
    # 2. naive backward
    W("conv_backward_naive", "= instead of += for overlapping windows in dx",
      (("dxp[n, :, rows, cols] += dout", "dxp[n, :, rows, cols] = dout"),), ("conv_backward_naive",)),
    W("conv_backward_naive", "dw overwritten instead of accumulated",
      (("dw[f] += dout[n, f, i, j]", "dw[f] = dout[n, f, i, j]"),), ("conv_backward_naive",)),
    W("conv_backward_naive", "bias gradient summed over the wrong axes",
      (("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(0, 1, 2))"),), ("conv_backward_naive",)),
    W("conv_backward_naive", "padding not cut off dx",
      (("dx = dxp[:, :, pad:pad + H, pad:pad + W]", "dx = dxp"),), ("conv_backward_naive",)),
    W("conv_backward_naive", "stride ignored in the backward pass",
      (("r, c = i * stride, j * stride\n                    rows", "r, c = i, j\n                    rows"),),
      ("conv_backward_naive",)),
    W("conv_backward_naive", "dilation ignored in the backward pass",
      (("rows = slice(r, r + dilation * (KH - 1) + 1, dilation)", "rows = slice(r, r + KH)"),
       ("cols = slice(c, c + dilation * (KW - 1) + 1, dilation)", "cols = slice(c, c + KW)")),
      ("conv_backward_naive",)),
    W("conv_backward_naive", "kernel flipped in dx",
      (("+= dout[n, f, i, j] * w[f]", "+= dout[n, f, i, j] * w[f, :, ::-1, ::-1]"),), ("conv_backward_naive",)),
    # 3. numerical gradient
    W("numerical_gradient", "one-sided difference",
      (("grad[ix] = np.sum((plus - minus) * dout) / (2 * h)",
        "grad[ix] = np.sum((plus - np.array(f(x), copy=True)) * dout) / h"),),
      ("eval_numerical_gradient_array",)),
    W("numerical_gradient", "divides by h instead of 2h",
      (("/ (2 * h)", "/ h"),), ("eval_numerical_gradient_array",)),
    W("numerical_gradient", "x not restored after nudging",
      (("        x[ix] = old\n", ""),), ("eval_numerical_gradient_array",)),
    W("numerical_gradient", "f's output not copied (breaks when f returns a view)",
      (("plus = np.array(f(x), copy=True)", "plus = f(x)"), ("minus = np.array(f(x), copy=True)", "minus = f(x)")),
      ("eval_numerical_gradient_array",)),
    W("numerical_gradient", "dout ignored",
      (("np.sum((plus - minus) * dout)", "np.sum(plus - minus)"),), ("eval_numerical_gradient_array",)),
    # 4. im2col
    W("im2col", "reshape where the transpose to (C, N, ...) was needed",
      (("cols[:, u, v] = patch.transpose(1, 0, 2, 3)", "cols[:, u, v] = patch.reshape(cols[:, u, v].shape)"),),
      ("im2col",)),
    W("im2col", "dilation ignored in the kernel offsets",
      (("r, c = u * dilation, v * dilation\n            patch", "r, c = u, v\n            patch"),), ("im2col",)),
    W("im2col", "stride ignored (every position taken)",
      ((_PATCH, "patch = xp[:, :, r:r + H_out, c:c + W_out]"),), ("im2col",)),
    W("im2col", "rows ordered (u, v, c) instead of (c, u, v)",
      (("cols = np.empty((C, KH, KW, N, H_out, W_out), dtype=x.dtype)",
        "cols = np.empty((KH, KW, C, N, H_out, W_out), dtype=x.dtype)"),
       ("cols[:, u, v] = patch.transpose(1, 0, 2, 3)", "cols[u, v] = patch.transpose(1, 0, 2, 3)")),
      ("im2col",)),
    # 5. col2im
    W("col2im", "= instead of += where receptive fields overlap", ((_SCATTER, _SCATTER.replace(" += ", " = ")),),
      ("col2im",)),
    W("col2im", "padding not cropped",
      (("return xp[:, :, pad:pad + H, pad:pad + W]", "return xp[:, :, :H, :W]"),), ("col2im",)),
    W("col2im", "dilation ignored in the kernel offsets",
      (("r, c = u * dilation, v * dilation\n            xp", "r, c = u, v\n            xp"),), ("col2im",)),
    W("col2im", "reshape where the transpose back to (N, C, H, W) was needed",
      (("return xp[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)",
        "return xp[:, :, pad:pad + H, pad:pad + W].reshape(N, C, H, W)"),), ("col2im",)),
    # 6. fast forward
    W("conv_forward_fast", "output reshaped without moving F behind N",
      (("out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)", "out.reshape(N, F, H_out, W_out)"),),
      ("conv_forward_fast",)),
    W("conv_forward_fast", "bias added along the wrong axis",
      (("+ b[:, None]", "+ b[None, :]"),), ("conv_forward_fast",)),
    W("conv_forward_fast", "weights flattened in the wrong order",
      (("out = w.reshape(F, -1) @ cols", "out = w.transpose(0, 2, 3, 1).reshape(F, -1) @ cols"),),
      ("conv_forward_fast",)),
    # 7. fast backward
    W("conv_backward_fast", "dout flattened without moving F first",
      (("dout_mat = dout.transpose(1, 0, 2, 3).reshape(F, -1)", "dout_mat = dout.reshape(F, -1)"),),
      ("conv_backward_fast",)),
    W("conv_backward_fast", "bias gradient summed over the wrong axes",
      (("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(1, 2, 3))"),), ("conv_backward_fast",)),
    W("conv_backward_fast", "dx computed with the untransposed weight matrix",
      (("dcols = w.reshape(F, -1).T @ dout_mat", "dcols = w.reshape(-1, F) @ dout_mat"),),
      ("conv_backward_fast",)),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "conv_backward_naive: = instead of += for overlapping windows in dx"
