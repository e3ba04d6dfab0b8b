"""Test suites the assignments' test cells call, one module per assignment.

Each ``check_<exercise>`` function takes the student's function(s). Called without a seed it runs
the visible cases (small, fixed, fast); called with ``seed=`` it runs a random sweep of
configurations drawn from that seed, which is what the hidden tests do. Every failure is a
:class:`autograder.checks.CheckFailure` whose message starts with the call that went wrong.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

from ..kernel.checks import CheckFailure, call_as, describe


@contextlib.contextmanager
def forbid(module: ModuleType, attr: str, exercise: str, advice: str) -> Iterator[None]:
    """Make ``module.attr`` raise a CheckFailure while the block runs: "write it yourself" guard rails."""
    original = getattr(module, attr)

    def blocked(*args, **kwargs):
        raise CheckFailure(f"{exercise} must not call {module.__name__}.{attr}: {advice}")

    setattr(module, attr, blocked)
    try:
        yield
    finally:
        setattr(module, attr, original)


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one CPU thread while the block runs (restored after). The checks' tensors are small,
    and on a machine shared by several grading workers more threads wait on each other: measured
    5-10 times slower with two threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def recipe(name: str, *args, cpu_seconds: float | None = None, **kwargs):
    """Run the grader's training recipe ``name`` where the student's code is (:mod:`autograder.recipes`),
    limited to ``cpu_seconds`` of the kernel's CPU time as the judge measures it from outside (a busy
    grading machine costs nothing); a run the recipe stopped (a diverging loss, too slow) becomes a
    CheckFailure with its message, and so does a run past its CPU limit."""
    from ..kernel import student

    cpu = student.CpuLimit(cpu_seconds) if cpu_seconds else None
    try:
        return student.op("recipe", name, *args, cpu=cpu, **kwargs)
    except student.TimedOut as exc:
        if cpu is None:
            raise
        why = str(exc).removeprefix("stopped: ").removeprefix("timed out: ")
        raise CheckFailure(f"the grader's {name} training run was stopped: {why}{student.where(exc)}.") from None
    except Exception as exc:
        if getattr(exc, "type_name", type(exc).__name__) == "Stopped":
            raise CheckFailure(str(exc)) from None
        raise


def dims(shape: Sequence[int]) -> str:
    """A shape as messages write it: ``(2, 3, 5, 5)``."""
    return str(tuple(int(s) for s in shape))


def one_blas_thread():
    """A context in which NumPy's BLAS uses one thread: the checks' matrices are small, and on a
    busy machine several BLAS threads fight over the cores and run many times slower."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # installed with scikit-learn; without it, run as configured
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def single_threaded(check: Callable) -> Callable:
    """Run a whole check (the student's calls and the references) under :func:`one_torch_thread`."""
    @functools.wraps(check)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with one_torch_thread():
            return check(*args, **kwargs)
    return wrapper


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported: no import here
    return torch is not None and isinstance(value, torch.Tensor)


def show(value: Any) -> str:
    """A PyTorch suite's arguments and results in messages: handles by what they are, tensors by
    shape and dtype, the rest as :func:`checks.describe`."""
    from ..kernel import student

    if student.is_handle(value):
        return value.why.split(";")[0] if value.why else f"a {value.type} object"
    if _is_tensor(value):
        return f"tensor{dims(value.shape)} {str(value.dtype).replace('torch.', '')}"
    return describe(value)


def float_array(value: Any, label: str, what: str):
    """What the student's function returned (a tensor, an array, a list) as a float64 NumPy array, or
    a CheckFailure saying it was ``None``, an object that is not data, or not numbers."""
    import numpy as np

    from ..kernel import student

    if value is None:
        raise CheckFailure(f"{label}: expected {what}, got None. Did the function forget to `return`?")
    if student.is_handle(value):
        raise CheckFailure(f"{label}: expected {what}, got {show(value)}.")
    if _is_tensor(value):
        return value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except Exception as exc:
        raise CheckFailure(f"{label}: expected {what}, got {show(value)}.") from exc


def quiet_call(fn: Callable, *args: Any, label: str, hint: str | None = None, **kwargs: Any) -> Any:
    """The student's ``fn`` through :func:`checks.call_as`, with warnings silenced: a test cell that
    writes to stderr fails, and a warning is not the student's mistake."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call_as(label, fn, *args, hint=hint, **kwargs)
