"""Progress bars on standard error, so that tables on standard output stay clean."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, unit: str, enable: bool = True, total: int | None = None):
    """``items`` with a tqdm bar on stderr when ``enable``; the bare iterable otherwise."""
    if not enable:
        return items
    return tqdm(items, desc=desc, unit=f" {unit}", total=total, file=sys.stderr, leave=True,
                dynamic_ncols=True, mininterval=0.5)


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def counter(*, total: int, initial: int = 0, desc: str, unit: str, enable: bool = True):
    """A bar advanced by hand (``update``), for work that finishes out of order; silent if not ``enable``."""
    if not enable:
        return _Silent()
    return tqdm(total=total, initial=initial, desc=desc, unit=f" {unit}", file=sys.stderr, leave=True,
                dynamic_ncols=True, mininterval=0.5)
