"""The one table of comparison tolerances, shared by the checks, the references and the notebooks.

Kept free of PyTorch so that :mod:`autograder.checks` imports without it.
"""

from __future__ import annotations

import numpy as np

# (device type, dtype) -> (rtol, atol). float64 references agree with a correct float64 NumPy
# implementation to rounding (~1e-15 relative); the slack covers a different summation order.
# float32 keeps ~7 significant digits, and the GPU's convolution algorithms reorder sums further.
TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {
    ("cpu", "float64"): (1e-7, 1e-9),
    ("cpu", "float32"): (1e-4, 1e-5),
    ("cpu", "float16"): (1e-2, 1e-3),
    ("cuda", "float64"): (1e-7, 1e-9),
    ("cuda", "float32"): (1e-4, 1e-5),
    ("cuda", "float16"): (1e-2, 1e-3),
}


def tolerance(dtype, device_type: str = "cpu") -> tuple[float, float]:
    """(rtol, atol) for results of ``dtype`` (NumPy dtype, name, or torch dtype) on ``device_type``."""
    name = str(dtype).replace("torch.", "") if "torch" in str(type(dtype)) else np.dtype(dtype).name
    try:
        return TOLERANCES[(device_type, name)]
    except KeyError:
        raise KeyError(f"no tolerance for {name} on {device_type}; known: {sorted(TOLERANCES)}") from None
