"""The course secret: where the hidden tests' seeds come from.

An open course publishes ``solutions/`` — and with it every hidden test's code. What it must not
publish is the seeds those tests draw their inputs from, or a student could compute the hidden
cases and tune to them. So a hidden test asks for ``suite.hidden_seed("pad2d")``, which is
``HMAC-SHA256(secret, "<assignment>/<exercise>/<salt>")`` folded to 62 bits (too wide to search from a
leaked input), and the secret lives outside
the repository: in the course's working folder (``work/course_secret``, created on first use, mode
0600), or in ``$AUTOGRADER_SECRET`` (a value) or ``$AUTOGRADER_SECRET_FILE`` (a path). The judge
sets it explicitly while it runs a hidden test (:func:`using`), with a *salt* naming the student and
the bytes of the submission: every student, and every submission of one student, draws its own
hidden cases, so nothing one submission learns about its cases fits another's; the same submission
regraded draws the same cases.
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
_salt: str = ""

FILE_NAME = "course_secret"


@contextlib.contextmanager
def using(value: bytes | None, salt: str = "") -> Iterator[None]:
    """Hidden seeds inside the block come from ``value`` and ``salt`` (the student and their
    submission, when grading; see :func:`submission_salt`)."""
    global _current, _salt
    before, _current = (_current, _salt), value
    _salt = salt
    try:
        yield
    finally:
        _current, _salt = before


def submission_salt(student: str, submission_digest: str) -> str:
    """What makes one student's hidden cases theirs alone: their id and their submission's bytes."""
    return f"{student}\x00{submission_digest}"


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


SEED_BITS = 62  # wide enough that no one searches the seed from a leaked input; seed + k stays an int64


def seed(secret: bytes, assignment: str, exercise: str, purpose: str = "", salt: str = "") -> int:
    """A seed for one exercise's hidden tests (``purpose`` tells several seeds of one exercise apart;
    ``salt`` makes them one student's and one submission's)."""
    message = f"{assignment}/{exercise}" + (f"/{purpose}" if purpose else "")
    if salt:
        message += "\x00" + salt
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - SEED_BITS)


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
        return seed(current(), assignment, exercise, purpose, _salt)

    return hidden_seed
