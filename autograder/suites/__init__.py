"""Test suites the assignments' test cells call, one module per assignment.

Each ``check_<exercise>`` function takes the student's function(s). Called without a seed it runs
the visible cases (small, fixed, fast); called with ``seed=`` it runs a random sweep of
configurations drawn from that seed, which is what the hidden tests do. Every failure is a
:class:`autograder.checks.CheckFailure` whose message starts with the call that went wrong.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Iterator

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
