"""The course secret: where the hidden tests' seeds come from.

An open course publishes ``solutions/`` — and with it every hidden test's code. What it must not
publish is the seeds those tests draw their inputs from, or a student could compute the hidden
cases and tune to them. So a hidden test asks for ``suite.hidden_seed("pad2d")``, which is
``HMAC-SHA256(secret, "<assignment>/<exercise>")`` folded to 31 bits, and the secret lives outside
the repository: in the course's working folder (``work/course_secret``, created on first use, mode
0600), or in ``$AUTOGRADER_SECRET`` (a value) or ``$AUTOGRADER_SECRET_FILE`` (a path). The judge
sets it explicitly while it runs a hidden test (:func:`using`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Callable, Iterator

_current: bytes | None = None

FILE_NAME = "course_secret"


@contextlib.contextmanager
def using(value: bytes | None) -> Iterator[None]:
    """Hidden seeds inside the block come from ``value``."""
    global _current
    before, _current = _current, value
    try:
        yield
    finally:
        _current = before


def path_for(work: Path) -> Path:
    return Path(os.environ.get("AUTOGRADER_SECRET_FILE") or work / FILE_NAME)


def load(work: Path, create: bool = True) -> bytes:
    """The course secret: ``$AUTOGRADER_SECRET``, else the file in the working folder (made on first
    use with 32 random bytes, readable by its owner only)."""
    env = os.environ.get("AUTOGRADER_SECRET")
    if env:
        return env.encode()
    path = path_for(work)
    if path.is_file():
        value = path.read_text().strip().encode()
        if len(value) < 16:
            raise ValueError(f"the course secret in {path} is shorter than 16 characters; set a longer one "
                             "(python -m autograder secret --set VALUE)")
        return value
    if not create:
        raise FileNotFoundError(path)
    return store(path, secrets.token_hex(32))


def store(path: Path, value: str) -> bytes:
    """Write ``value`` as the course secret at ``path`` (owner-only, replacing any earlier one)."""
    value = value.strip()
    if len(value) < 16:
        raise ValueError("a course secret needs at least 16 characters")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(tmp, path)
    return value.encode()


def seed(secret: bytes, assignment: str, exercise: str, purpose: str = "") -> int:
    """A seed for one exercise's hidden tests (``purpose`` tells several seeds of one exercise apart)."""
    message = f"{assignment}/{exercise}" + (f"/{purpose}" if purpose else "")
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def current(work_hint: Path | None = None) -> bytes:
    """The secret in force: the judge's, else the course's found from the working folder."""
    if _current is not None:
        return _current
    from .course import find_course

    return load((work_hint or find_course().work))


def seeds_for(module_name: str) -> Callable[..., int]:
    """``hidden_seed(exercise)`` for the suite module ``autograder.suites.<assignment>``."""
    assignment = module_name.rsplit(".", 1)[-1]

    def hidden_seed(exercise: str, purpose: str = "") -> int:
        """The seed of ``exercise``'s hidden tests, drawn from the course secret."""
        return seed(current(), assignment, exercise, purpose)

    return hidden_seed
