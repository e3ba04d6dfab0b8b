"""Functions a check hands to the student's code, known by name on both sides of the protocol.

a2's ``eval_numerical_gradient_array(f, x, df)`` differentiates a function it is given. A function
cannot cross the protocol, so the check names one from this catalogue (with its parameters, as
data) and the kernel builds it here, in NumPy. The check computes the true gradient of the same
function with PyTorch's autograd in its own process.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _cube(x: np.ndarray, _p: Any) -> np.ndarray:
    return x**3


def _transpose_times(x: np.ndarray, A: np.ndarray) -> np.ndarray:
    return x.T @ A


def _transpose(x: np.ndarray, _p: Any) -> np.ndarray:
    return x.T  # a view of x: a careless numerical gradient reads it after nudging x again


def _tanh_times_reversed(x: np.ndarray, _p: Any) -> np.ndarray:
    return np.tanh(x) * x[::-1]


def _sin_times_square(x: np.ndarray, _p: Any) -> np.ndarray:
    return np.sin(x) * x**2


PROBES: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "cube": _cube,
    "transpose_times": _transpose_times,
    "transpose": _transpose,
    "tanh_times_reversed": _tanh_times_reversed,
    "sin_times_square": _sin_times_square,
}


class Local:
    """A probe function in the notebook's own process; the judge sends it by name."""

    def __init__(self, name: str, params: Any = None):
        if name not in PROBES:
            raise KeyError(f"no probe function {name!r}")
        self.name, self.params = name, params

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return PROBES[self.name](x, self.params)

    def __repr__(self) -> str:
        return f"probe {self.name}"


def build(name: Any, params: Any) -> Callable[[np.ndarray], np.ndarray]:
    """The probe ``name`` with ``params``, as the kernel builds it for the student's code."""
    if type(name) is not str or name not in PROBES:
        raise ValueError(f"no probe function {name!r}")
    fn = PROBES[name]

    def f(x: np.ndarray) -> np.ndarray:
        return fn(x, params)

    f.__name__ = name
    return f
