"""Where the course lives: the tracked sources and the untracked working directory.

A course root holds ``nbgrader_config.py``, ``solutions/<assignment>/*.ipynb`` (the nbgrader
sources) and ``assignments/`` (their student releases). Course working files — the instructor's
gradebook, demo submissions, autograded notebooks, feedback — go under ``work/``, which git ignores.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

ASSIGNMENT_RE = re.compile(r"^a\d+_[a-z0-9_]+$")


class UsageError(Exception):
    """Bad input from the person at the keyboard: the message is one line saying what and how to fix it."""


@dataclass(frozen=True)
class Course:
    root: Path

    @property
    def solutions(self) -> Path:
        return self.root / "solutions"

    @property
    def assignments(self) -> Path:
        return self.root / "assignments"

    @property
    def lectures(self) -> Path:
        return self.root / "lectures"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def assignment_ids(self) -> list[str]:
        """Assignments present in solutions/, in course order (a1, a2, …, a10)."""
        if not self.solutions.is_dir():
            return []
        ids = [p.name for p in self.solutions.iterdir() if p.is_dir() and ASSIGNMENT_RE.match(p.name)]
        return sorted(ids, key=lambda a: (int(a[1:a.index("_")]), a))

    def require(self, assignment: str) -> str:
        """Return ``assignment`` if it exists, else raise a UsageError naming the known ones."""
        known = self.assignment_ids()
        if assignment not in known:
            close = [a for a in known if a.startswith(assignment.split("_")[0] + "_")]
            suggestion = f" Did you mean {close[0]}?" if close else ""
            raise UsageError(f"unknown assignment {assignment!r}; known: {', '.join(known) or 'none'}.{suggestion}")
        return assignment

    def notebooks(self, assignment: str) -> list[str]:
        """Notebook names (without .ipynb) of an assignment, sorted."""
        return sorted(p.stem for p in (self.solutions / self.require(assignment)).glob("*.ipynb"))


def _is_course(path: Path) -> bool:
    return (path / "nbgrader_config.py").is_file() and (path / "solutions").is_dir()


def find_course(path: str | os.PathLike | None = None) -> Course:
    """The course at ``path``; else ``$AUTOGRADER_COURSE``; else the first course root above the
    working directory; else the checkout this package was installed from."""
    if path is not None:
        root = Path(path).expanduser().resolve()
        if not _is_course(root):
            raise UsageError(f"{root} is not a course folder (it needs nbgrader_config.py and solutions/)")
        return Course(root)
    env = os.environ.get("AUTOGRADER_COURSE")
    if env:
        return find_course(env)
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if _is_course(candidate):
            return Course(candidate)
    installed = Path(__file__).resolve().parent.parent
    if _is_course(installed):
        return Course(installed)
    raise UsageError("no course folder found; run from the course checkout or pass --course DIR")


def course_of(path: str | os.PathLike) -> Course | None:
    """The course a notebook belongs to: the first course root above it, else the one
    :func:`find_course` finds; None when there is none."""
    here = Path(path).expanduser().resolve()
    for candidate in here.parents:
        if _is_course(candidate):
            return Course(candidate)
    try:
        return find_course()
    except UsageError:
        return None
