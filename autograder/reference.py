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

from . import tolerances as _tolerances
from .tolerances import TOLERANCES

__all__ = [
    "TOLERANCES",
    "conv2d",
    "conv2d_params",
    "conv_output_size",
    "convolve2d",
    "correlate2d",
    "device",
    "gaussian_kernel",
    "linear_params",
    "pad2d",
    "rgb_to_gray",
    "sobel_magnitude",
    "to_numpy",
    "to_tensor",
    "tolerance",
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
