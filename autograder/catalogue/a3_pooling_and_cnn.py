"""Realistic wrong answers for a3_pooling_and_cnn."""

from . import WrongAnswer as W

_NET = ("conv_net_loss", "conv_net_training")

# The backward tests call the student's forward pooling (for its cache); SmallConvNet calls relu,
# affine, max pooling and softmax_loss; the training exercise trains SmallConvNet.
DEPENDS = {
    "relu": _NET,
    "affine": _NET,
    "max_pool_forward": ("max_pool_backward",) + _NET,
    "max_pool_backward": _NET,
    "avg_pool_forward": ("avg_pool_backward",),
    "softmax_loss": _NET,
    "conv_net_loss": ("conv_net_training",),
}

_STRIDED = "r, c = i * stride, j * stride"
_H_OUT = "    H_out = (H - pool_height) // stride + 1\n"  # the code line, not the docstring's formula
_W_OUT = "    W_out = (W - pool_width) // stride + 1\n"
_REG_GRADS = ('        for name in ("W1", "W2", "W3"):\n'
              "            grads[name] += self.reg * self.params[name]\n")

WRONG_ANSWERS = [
    # 1. ReLU
    W("relu", "np.max instead of np.maximum (reduces an axis)",
      (("out = np.maximum(x, 0)", "out = np.max(x, 0)"),), ("relu_forward",)),
    # No "forward clips x in place": ReLU is idempotent and nothing in the exercise reuses its input, so
    # the clipped x has no consequence the judge could observe (PyTorch's own ReLU(inplace=True) does it).
    W("relu", "backward passes dout through without the mask",
      (("dx = dout * (x > 0)", "dx = dout"),), ("relu_backward",)),
    W("relu", "backward mask taken from dout instead of x",
      (("dx = dout * (x > 0)", "dx = dout * (dout > 0)"),), ("relu_backward",)),
    # 2. affine
    W("affine", "bias forgotten", (("out = x_rows @ w + b", "out = x_rows @ w"),), ("affine_forward",)),
    W("affine", "dx not reshaped back to the shape of x",
      (("dx = (dout @ w.T).reshape(x.shape)", "dx = dout @ w.T"),), ("affine_backward",)),
    W("affine", "db summed over the wrong axis",
      (("db = dout.sum(axis=0)", "db = dout.sum(axis=1)"),), ("affine_backward",)),
    W("affine", "db averaged over the batch instead of summed",
      (("db = dout.sum(axis=0)", "db = dout.mean(axis=0)"),), ("affine_backward",)),
    W("affine", "dw transposed", (("dw = x_rows.T @ dout", "dw = dout.T @ x_rows"),), ("affine_backward",)),
    # 3. max pooling, forward
    W("max_pool_forward", "window start uses the pool size instead of the stride",
      ((_STRIDED, "r, c = i * pool_height, j * pool_width"),), ("max_pool_forward",)),
    W("max_pool_forward", "output size H // pool (ignores the stride)",
      ((_H_OUT, "    H_out = H // pool_height\n"), (_W_OUT, "    W_out = W // pool_width\n")), ("max_pool_forward",)),
    W("max_pool_forward", "pool height and width swapped",
      (("window = x[:, :, r:r + pool_height, c:c + pool_width]",
        "window = x[:, :, r:r + pool_width, c:c + pool_height]"),), ("max_pool_forward",)),
    # 4. max pooling, backward
    W("max_pool_backward", "= instead of += where windows overlap",
      (("dx[n_idx, c_idx, r + u, c + v] += dout[:, :, i, j]", "dx[n_idx, c_idx, r + u, c + v] = dout[:, :, i, j]"),),
      ("max_pool_backward",)),
    W("max_pool_backward", "argmax unravelled with the shape (pool_width, pool_height)",
      (("np.unravel_index(k, (pool_height, pool_width))", "np.unravel_index(k, (pool_width, pool_height))"),),
      ("max_pool_backward",)),
    W("max_pool_backward", "stride ignored (window i starts at row i)",
      ((_STRIDED, "r, c = i, j"),), ("max_pool_backward",)),
    # 5. average pooling, forward
    W("avg_pool_forward", "divides by pool_height squared (assumes square pools)",
      (("/ (pool_height * pool_width)", "/ (pool_height * pool_height)"),), ("avg_pool_forward",)),
    W("avg_pool_forward", "window start uses the pool size instead of the stride",
      ((_STRIDED, "r, c = i * pool_height, j * pool_width"),), ("avg_pool_forward",)),
    W("avg_pool_forward", "output size H // pool (ignores the stride)",
      ((_H_OUT, "    H_out = H // pool_height\n"), (_W_OUT, "    W_out = W // pool_width\n")), ("avg_pool_forward",)),
    # 6. average pooling, backward
    W("avg_pool_backward", "= instead of += where windows overlap",
      (("+= dout[:, :, i:i + 1, j:j + 1]", "= dout[:, :, i:i + 1, j:j + 1]"),), ("avg_pool_backward",)),
    W("avg_pool_backward", "gradient not divided by the window size",
      (("dout[:, :, i:i + 1, j:j + 1] / (pool_height * pool_width)", "dout[:, :, i:i + 1, j:j + 1]"),),
      ("avg_pool_backward",)),
    W("avg_pool_backward", "divided by the stride squared instead of the window size",
      (("/ (pool_height * pool_width)", "/ (stride * stride)"),), ("avg_pool_backward",)),
    W("avg_pool_backward", "stride ignored (window i starts at row i)",
      ((_STRIDED, "r, c = i, j"),), ("avg_pool_backward",)),
    # 7. global average pooling
    W("global_avg_pool", "mean over the wrong axes (1, 2)",
      (("out = x.mean(axis=(2, 3))", "out = x.mean(axis=(1, 2))"),), ("global_avg_pool_forward",)),
    W("global_avg_pool", "keepdims: returns (N, C, 1, 1)",
      (("out = x.mean(axis=(2, 3))", "out = x.mean(axis=(2, 3), keepdims=True)"),), ("global_avg_pool_forward",)),
    W("global_avg_pool", "backward not divided by H*W",
      (("dout[:, :, None, None] / (H * W)", "dout[:, :, None, None]"),), ("global_avg_pool_backward",)),
    W("global_avg_pool", "backward divided by N*H*W",
      (("/ (H * W)", "/ (N * H * W)"),), ("global_avg_pool_backward",)),
    # 8. softmax loss
    W("softmax_loss", "loss summed over the batch, not averaged",
      (("loss = -log_probs[np.arange(N), y].mean()", "loss = -log_probs[np.arange(N), y].sum()"),),
      ("softmax_loss",)),
    W("softmax_loss", "dx not divided by N", (("    dx /= N\n", ""),), ("softmax_loss",)),
    W("softmax_loss", "1 not subtracted at the true class in dx",
      (("    dx[np.arange(N), y] -= 1\n", ""),), ("softmax_loss",)),
    W("softmax_loss", "true-class scores indexed [:, y] (an N×N block)",
      (("log_probs[np.arange(N), y]", "log_probs[:, y]"),), ("softmax_loss",)),
    W("softmax_loss", "no max subtraction (exp overflows on large scores)",
      (("shifted = x - x.max(axis=1, keepdims=True)", "shifted = x"),), ("softmax_loss",)),
    # 9. the network
    W("conv_net_loss", "regularisation missing from the gradients", ((_REG_GRADS, ""),), ("SmallConvNet",)),
    W("conv_net_loss", "L2 penalty without the factor 0.5",
      (("loss += 0.5 * self.reg *", "loss += self.reg *"),), ("SmallConvNet",)),
    W("conv_net_loss", "max pool layer skipped",
      (("flat = num_filters * (H // 2) * (W // 2)", "flat = num_filters * H * W"),
       ("p1, pool_cache = max_pool_forward(r1, 2, 2, 2)", "p1, pool_cache = r1, None"),
       ("dr1 = max_pool_backward(dp1, pool_cache)", "dr1 = dp1")), ("SmallConvNet",)),
    W("conv_net_loss", "flattened size num_filters * H * W // 4 (wrong for odd sizes)",
      (("num_filters * (H // 2) * (W // 2)", "num_filters * H * W // 4"),), ("SmallConvNet",)),
    W("conv_net_loss", "no ReLU after the hidden affine layer",
      (("r2, relu2_cache = relu_forward(a2)", "r2, relu2_cache = a2, None"),
       ("da2 = relu_backward(dr2, relu2_cache)", "da2 = dr2")), ("SmallConvNet",)),
    # 10. SGD with momentum (and the training run)
    W("conv_net_training", "gradient added to the velocity (ascent)",
      (("next_v = momentum * v - learning_rate * dw", "next_v = momentum * v + learning_rate * dw"),),
      ("sgd_momentum",)),
    W("conv_net_training", "weights updated with the old velocity",
      (("next_w = w + next_v", "next_w = w + v"),), ("sgd_momentum",)),
    W("conv_net_training", "velocity not carried over (returns the old v)",
      (("return next_w, next_v", "return next_w, v"),), ("sgd_momentum",)),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "max_pool_backward: = instead of += where windows overlap"
