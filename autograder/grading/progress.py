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
