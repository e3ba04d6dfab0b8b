"""PyTorch reference operations the exercises are checked against.

Every function takes NumPy arrays and returns NumPy arrays, so test cells never handle tensors.
Inputs are drawn on the CPU by the caller, moved to :func:`device` here (the GPU when one is
present, the CPU otherwise), computed there with TF32 switched off, and brought back as float64
unless said otherwise. Tolerances for comparing against these results live in :data:`TOLERANCES`,
the one table the package and the notebooks use.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .kernel import tolerances as _tolerances
from .kernel.tolerances import TOLERANCES

__all__ = [
    "TOLERANCES",
    "affine",
    "affine_vjp",
    "avg_pool2d",
    "avg_pool2d_vjp",
    "conv2d",
    "conv2d_backward",
    "conv2d_params",
    "conv_output_size",
    "convolve2d",
    "correlate2d",
    "cross_entropy",
    "device",
    "fold",
    "gaussian_kernel",
    "global_avg_pool",
    "global_avg_pool_vjp",
    "linear_params",
    "max_pool2d",
    "max_pool2d_vjp",
    "pad2d",
    "relu",
    "relu_vjp",
    "rgb_to_gray",
    "sgd_momentum_steps",
    "small_convnet",
    "sobel_magnitude",
    "to_numpy",
    "to_tensor",
    "tolerance",
    "unfold",
]

# ITU-R BT.601 luma weights for R, G, B: the eye is most sensitive to green, least to blue.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_PAD_MODES = {"zero": "constant", "reflect": "reflect", "replicate": "replicate"}


def _exact_math() -> None:
    """TF32 trades 13 bits of mantissa for speed on Ampere and later GPUs: off for comparisons."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


_exact_math()


def device() -> torch.device:
    """The device references run on: ``$AUTOGRADER_DEVICE`` if set, else cuda when available, else cpu."""
    wanted = os.environ.get("AUTOGRADER_DEVICE", "").strip()
    if wanted:
        dev = torch.device(wanted)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"AUTOGRADER_DEVICE={wanted} but PyTorch sees no CUDA device")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tolerance(dtype: np.dtype | str | torch.dtype, device_type: str | None = None) -> tuple[float, float]:
    """(rtol, atol) from :data:`TOLERANCES` for ``dtype`` on ``device_type`` (default: :func:`device`)."""
    return _tolerances.tolerance(dtype, device_type or device().type)


def to_tensor(a: np.ndarray | float, dtype: torch.dtype = torch.float64,
              dev: torch.device | None = None) -> torch.Tensor:
    """A NumPy array (made on the CPU) as a tensor of ``dtype`` on ``dev`` (default :func:`device`)."""
    a = np.ascontiguousarray(a)
    t = torch.as_tensor(a if a.flags.writeable else a.copy(), dtype=dtype)  # torch warns on read-only
    return t.to(dev or device())


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor back on the CPU as a float64 NumPy array, detached from autograd."""
    return t.detach().to("cpu", torch.float64).numpy()


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int | Sequence[int] = 1,
           pad: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, groups: int = 1) -> np.ndarray:
    """``torch.nn.functional.conv2d`` (a cross-correlation) on NumPy arrays, in float64.

    x: input of shape (N, C, H, W); w: weights (F, C // groups, KH, KW); b: bias (F,) or None.
    Returns (N, F, H_out, W_out) with H_out = floor((H + 2*pad - dilation*(KH - 1) - 1) / stride) + 1.
    """
    dev = device()
    out = F.conv2d(to_tensor(x, dev=dev), to_tensor(w, dev=dev),
                   None if b is None else to_tensor(b, dev=dev),
                   stride=_pair(stride), padding=_pair(pad), dilation=_pair(dilation), groups=groups)
    return to_numpy(out)


def conv2d_backward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dout: np.ndarray,
                    stride: int | Sequence[int] = 1, pad: int | Sequence[int] = 0,
                    dilation: int | Sequence[int] = 1, groups: int = 1) -> tuple[np.ndarray, ...]:
    """Gradients of ``sum(conv2d(x, w, b) * dout)`` by autograd, in float64.

    x: (N, C, H, W); w: (F, C // groups, KH, KW); b: (F,) or None; dout: (N, F, H_out, W_out).
    Returns (dx, dw, db) with the shapes of x, w and b (db is None when b is None).
    """
    dev = device()
    xt = to_tensor(x, dev=dev).requires_grad_(True)
    wt = to_tensor(w, dev=dev).requires_grad_(True)
    bt = None if b is None else to_tensor(b, dev=dev).requires_grad_(True)
    out = F.conv2d(xt, wt, bt, stride=_pair(stride), padding=_pair(pad), dilation=_pair(dilation), groups=groups)
    out.backward(to_tensor(dout, dev=dev))
    return to_numpy(xt.grad), to_numpy(wt.grad), None if bt is None else to_numpy(bt.grad)


def unfold(x: np.ndarray, kernel: int | Sequence[int], stride: int | Sequence[int] = 1,
           pad: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> np.ndarray:
    """im2col by ``F.unfold``: x (N, C, H, W) -> (C*KH*KW, N*H_out*W_out).

    Row r = (c, kh, kw) in C order, matching ``w.reshape(F, -1)``; column = (n, oh, ow) in C order.
    """
    cols = F.unfold(to_tensor(x), _pair(kernel), dilation=_pair(dilation), padding=_pair(pad),
                    stride=_pair(stride))  # (N, C*KH*KW, L)
    return to_numpy(cols.permute(1, 0, 2).reshape(cols.shape[1], -1))


def fold(cols: np.ndarray, x_shape: Sequence[int], kernel: int | Sequence[int], stride: int | Sequence[int] = 1,
         pad: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1) -> np.ndarray:
    """col2im by ``F.fold``, the adjoint of :func:`unfold`: overlapping entries are summed and
    contributions that land in the padding are dropped. cols (C*KH*KW, N*L) -> x_shape (N, C, H, W)."""
    n, c, h, w = x_shape
    t = to_tensor(cols)
    t = t.reshape(t.shape[0], n, -1).permute(1, 0, 2)  # (N, C*KH*KW, L)
    out = F.fold(t, (h, w), _pair(kernel), dilation=_pair(dilation), padding=_pair(pad), stride=_pair(stride))
    return to_numpy(out)


def correlate2d(image: np.ndarray, kernel: np.ndarray, stride: int = 1, dilation: int = 1,
                pad: int = 0) -> np.ndarray:
    """Single-channel 2-D cross-correlation, "valid" after ``pad`` zeros on every side.

    image: (H, W); kernel: (KH, KW). Returns (H_out, W_out) as in :func:`conv2d`.
    """
    return conv2d(image[None, None], kernel[None, None], stride=stride, pad=pad, dilation=dilation)[0, 0]


def convolve2d(image: np.ndarray, kernel: np.ndarray, stride: int = 1, dilation: int = 1,
               pad: int = 0) -> np.ndarray:
    """True convolution: cross-correlation with the kernel flipped along both axes."""
    flipped = to_numpy(torch.flip(torch.as_tensor(kernel, dtype=torch.float64), dims=(0, 1)))
    return correlate2d(image, flipped, stride=stride, dilation=dilation, pad=pad)


def pad2d(image: np.ndarray, pad: int | Sequence[int], mode: str = "zero") -> np.ndarray:
    """``torch.nn.functional.pad`` on the last two axes.

    image: (H, W), (C, H, W) or (N, C, H, W); pad: p (all sides) or (pad_h, pad_w);
    mode: "zero", "reflect" (mirror without repeating the edge) or "replicate" (repeat the edge).
    Returns (..., H + 2*pad_h, W + 2*pad_w).
    """
    if mode not in _PAD_MODES:
        raise ValueError(f"unknown padding mode {mode!r}; use one of {sorted(_PAD_MODES)}")
    ph, pw = _pair(pad)
    t = to_tensor(image)
    lead = t.shape[:-2]
    t4 = t.reshape((-1, 1) + tuple(t.shape[-2:]))  # reflect/replicate want a batch and a channel axis
    out = F.pad(t4, (pw, pw, ph, ph), mode=_PAD_MODES[mode])
    return to_numpy(out.reshape(tuple(lead) + tuple(out.shape[-2:])))


def conv_output_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """The output length PyTorch's convolution gives, found by running it on shape-only tensors.

    Raises ValueError where PyTorch refuses (the dilated kernel does not fit in the padded input).
    """
    x = torch.empty((1, 1, size), device="meta")
    w = torch.empty((1, 1, kernel), device="meta")
    try:
        out = F.conv1d(x, w, stride=stride, padding=pad, dilation=dilation)
    except RuntimeError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    return int(out.shape[-1])


def rgb_to_gray(image: np.ndarray) -> np.ndarray:
    """Luma Y = 0.299 R + 0.587 G + 0.114 B of an (H, W, 3) image, returned (H, W) in float64."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=torch.float64, device=device())
    return to_numpy(to_tensor(image) @ weights)


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """(size, size) Gaussian centred on the middle pixel, normalised to sum to 1."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return to_numpy(g / g.sum())


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """sqrt(Gx² + Gy²) of an (H, W) image: "valid" correlation with the Sobel pair; (H-2, W-2)."""
    sx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    w = np.stack([sx, sx.T])[:, None]  # (2, 1, 3, 3): x then y
    g = torch.as_tensor(conv2d(image[None, None], w)[0])
    return to_numpy(torch.sqrt(g[0] ** 2 + g[1] ** 2))


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Parameters of ``nn.Linear(in_features, out_features)``, counted without allocating them."""
    layer = torch.nn.Linear(in_features, out_features, bias=bias, device="meta")
    return sum(p.numel() for p in layer.parameters())


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
                  bias: bool = True, groups: int = 1) -> int:
    """Parameters of ``nn.Conv2d(in_channels, out_channels, kernel_size)``, counted on the meta device."""
    layer = torch.nn.Conv2d(in_channels, out_channels, kernel_size, bias=bias, groups=groups,
                            device="meta")
    return sum(p.numel() for p in layer.parameters())


# ---------------------------------------------------------------------------------------------
# Layers of a small ConvNet (assignment a3): forward values and vector-Jacobian products
# ---------------------------------------------------------------------------------------------

def _vjp(fn, inputs: Sequence[np.ndarray], dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """Gradients of ``sum(fn(*inputs) * dout)`` with respect to each input, by autograd in float64."""
    dev = device()
    ts = [to_tensor(a, dev=dev).requires_grad_(True) for a in inputs]
    grads = torch.autograd.grad(fn(*ts), ts, grad_outputs=to_tensor(dout, dev=dev))
    return tuple(to_numpy(g) for g in grads)


def relu(x: np.ndarray) -> np.ndarray:
    """``F.relu``: max(x, 0) elementwise, any shape."""
    return to_numpy(F.relu(to_tensor(x)))


def relu_vjp(x: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """Gradient of ``sum(relu(x) * dout)`` with respect to x (same shape as x)."""
    return _vjp(F.relu, [x], dout)[0]


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.linear(x.reshape(x.shape[0], -1), w.T, b)


def affine(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fully connected layer in the (D, M) weight layout: x (N, d_1, ..., d_k) flattened to (N, D),
    w (D, M), b (M,). Returns (N, M) = x.reshape(N, D) @ w + b (``F.linear`` with weight w.T)."""
    return to_numpy(_affine(to_tensor(x), to_tensor(w), to_tensor(b)))


def affine_vjp(x: np.ndarray, w: np.ndarray, b: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, ...]:
    """(dx, dw, db) of ``sum(affine(x, w, b) * dout)``, with the shapes of x, w and b; dout (N, M)."""
    return _vjp(_affine, [x, w, b], dout)


def max_pool2d(x: np.ndarray, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None) -> np.ndarray:
    """``F.max_pool2d`` without padding: x (N, C, H, W), kernel k or (KH, KW), stride (default: kernel).

    Returns (N, C, H_out, W_out) with H_out = (H - KH) // stride + 1 (and the same for W).
    """
    stride = kernel if stride is None else stride
    return to_numpy(F.max_pool2d(to_tensor(x), _pair(kernel), _pair(stride)))


def max_pool2d_vjp(x: np.ndarray, kernel: int | Sequence[int], stride: int | Sequence[int] | None,
                   dout: np.ndarray) -> np.ndarray:
    """Gradient of ``sum(max_pool2d(x) * dout)`` with respect to x: each dout entry goes to the
    maximum of its window, summed where windows overlap. dout (N, C, H_out, W_out); returns x's shape."""
    stride = kernel if stride is None else stride
    return _vjp(lambda t: F.max_pool2d(t, _pair(kernel), _pair(stride)), [x], dout)[0]


def avg_pool2d(x: np.ndarray, kernel: int | Sequence[int], stride: int | Sequence[int] | None = None) -> np.ndarray:
    """``F.avg_pool2d`` without padding: x (N, C, H, W) -> (N, C, H_out, W_out), as :func:`max_pool2d`."""
    stride = kernel if stride is None else stride
    return to_numpy(F.avg_pool2d(to_tensor(x), _pair(kernel), _pair(stride)))


def avg_pool2d_vjp(x: np.ndarray, kernel: int | Sequence[int], stride: int | Sequence[int] | None,
                   dout: np.ndarray) -> np.ndarray:
    """Gradient of ``sum(avg_pool2d(x) * dout)`` with respect to x: each dout entry spread evenly
    over its window (divided by KH*KW), summed where windows overlap. Returns x's shape."""
    stride = kernel if stride is None else stride
    return _vjp(lambda t: F.avg_pool2d(t, _pair(kernel), _pair(stride)), [x], dout)[0]


def _global_avg_pool(t: torch.Tensor) -> torch.Tensor:
    return F.adaptive_avg_pool2d(t, 1).flatten(1)


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """``F.adaptive_avg_pool2d(x, 1)`` flattened: x (N, C, H, W) -> (N, C), the mean of each plane."""
    return to_numpy(_global_avg_pool(to_tensor(x)))


def global_avg_pool_vjp(x: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """Gradient of ``sum(global_avg_pool(x) * dout)`` with respect to x; dout (N, C), returns (N, C, H, W)."""
    return _vjp(_global_avg_pool, [x], dout)[0]


def cross_entropy(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """``F.cross_entropy`` (softmax then negative log-likelihood, mean over the batch) and its gradient.

    scores: (N, K) unnormalised class scores; y: (N,) integer labels in [0, K).
    Returns (loss, dscores): a float and the gradient of the loss with respect to scores, (N, K).
    """
    t = to_tensor(scores).requires_grad_(True)
    loss = F.cross_entropy(t, torch.as_tensor(np.asarray(y), dtype=torch.int64, device=t.device))
    (grad,) = torch.autograd.grad(loss, [t])
    return float(loss.item()), to_numpy(grad)


def small_convnet(X: np.ndarray, params: dict, filter_size: int, y: np.ndarray | None = None,
                  reg: float = 0.0) -> np.ndarray | tuple[float, dict]:
    """a3's SmallConvNet by PyTorch: conv (stride 1, padding (filter_size - 1) // 2) - relu - 2×2 max
    pool - affine - relu - affine. Without ``y`` the scores (N, K); with labels ``y`` the loss (mean
    cross-entropy plus 0.5 * reg * the squared weights W1, W2, W3) and its gradient for every
    parameter, by autograd.

    X: (N, C, H, W); params: W1 (F, C, k, k), b1 (F,), W2 (F*(H//2)*(W//2), hidden), b2, W3 (hidden, K), b3.
    """
    t = {k: to_tensor(v).requires_grad_(y is not None) for k, v in params.items()}
    pad = (filter_size - 1) // 2
    h = F.relu(F.conv2d(to_tensor(X), t["W1"], t["b1"], padding=pad))
    h = F.max_pool2d(h, 2, 2)
    h = F.relu(_affine(h, t["W2"], t["b2"]))
    scores = _affine(h, t["W3"], t["b3"])
    if y is None:
        return to_numpy(scores)
    loss = F.cross_entropy(scores, torch.as_tensor(np.asarray(y), dtype=torch.int64, device=scores.device))
    loss = loss + 0.5 * reg * sum((t[k] ** 2).sum() for k in ("W1", "W2", "W3"))
    grads = torch.autograd.grad(loss, [t[k] for k in params])
    return float(loss.item()), {k: to_numpy(g) for k, g in zip(params, grads)}


def sgd_momentum_steps(w: np.ndarray, grads: Sequence[np.ndarray], lr: float, momentum: float) -> np.ndarray:
    """The weights after each step of ``torch.optim.SGD(lr=lr, momentum=momentum)`` from ``w``,
    fed the gradients ``grads`` in turn (they do not depend on the weights).

    Returns an array (len(grads), *w.shape): row t holds the weights after step t + 1. With a
    constant learning rate this is the same trajectory as v <- momentum * v - lr * dw; w <- w + v.
    """
    p = torch.nn.Parameter(to_tensor(w).clone())  # never step the caller's array in place
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    out = []
    for g in grads:
        p.grad = to_tensor(g, dev=p.device)
        opt.step()
        out.append(to_numpy(p).copy())
    return np.stack(out) if out else np.zeros((0,) + np.shape(w))
