"""Test suites the assignments' test cells call, one module per assignment.

Each ``check_<exercise>`` function takes the student's function(s). Called without a seed it runs
the visible cases (small, fixed, fast); called with ``seed=`` it runs a random sweep of
configurations drawn from that seed, which is what the hidden tests do. Every failure is a
:class:`autograder.checks.CheckFailure` whose message starts with the call that went wrong.
"""

from __future__ import annotations

import contextlib
import functools
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

from ..checks import CheckFailure


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


def recipe(name: str, *args, **kwargs):
    """Run the grader's training recipe ``name`` where the student's code is (:mod:`autograder.recipes`);
    a run the recipe stopped (a diverging loss, too slow) becomes a CheckFailure with its message."""
    from .. import student

    try:
        return student.op("recipe", name, *args, **kwargs)
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
