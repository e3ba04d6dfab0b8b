"""`python -m autograder validate NOTEBOOK`: what the grade will say about the visible tests, now.

Validate runs the grader's own path (:func:`.worker.grade_notebook`): the same assembly (the
instructor's cells restored, the student's answers put in), the same sandboxed kernel with the
assignment's Python path, the same judge and the same restrictions — with the visible tests only,
since the hidden ones need the course secret. It prints, first, what costs points: each exercise's
verdict, with the check's message for a failure (what was expected, what came, where, what to
look at). An exercise that breaks its own restriction comes first, its message naming the cell and
the line (:mod:`.restrictions`): what Validate says about restrictions is exactly what the grade
will apply.

The instructor's notebook it assembles against is the release (``assignments/``), which every
student has; a notebook outside any course is validated against its own test cells.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..course import course_of
from .notebooks import Unreadable, read_submission
from .sandbox import Limits


@dataclass
class Outcome:
    exercise: str
    points: float
    passed: bool
    message: str | None
    restricted: bool = False  # charged by its restriction (a forbidden function, or code that cannot be checked)


def assignment_of(path: Path, course) -> tuple[str | None, Path | None]:
    """(assignment id, the release notebook to assemble against) for a notebook called like one."""
    if course is None:
        return None, None
    for assignment in course.assignment_ids():
        if path.stem in course.notebooks(assignment):
            release = course.assignments / assignment / f"{path.stem}.ipynb"
            return assignment, release if release.is_file() else course.solutions / assignment / f"{path.stem}.ipynb"
    return None, None


def run(path: Path, timeout: float = 120.0, budget: float = 900.0) -> tuple[list[Outcome], list[str]]:
    """Validate ``path``: an outcome per exercise, and the notes on what was restored."""
    from .worker import grade_notebook

    nb = read_submission(path)
    assignment, source_path = assignment_of(path, course_of(path))
    source = nbformat.read(source_path, as_version=4) if source_path else nb
    graded = grade_notebook(source, nb, assignment or "", limits=Limits(), cell_timeout=timeout,
                            deadline=time.monotonic() + budget, hidden=False)
    outcomes = [Outcome(v.grade_id, v.max_points, v.passed, v.message, v.grade_id in graded.charged)
                for v in graded.verdicts]
    return sorted(outcomes, key=lambda o: not o.restricted), graded.notes  # the restrictions first


def validate(path: Path, timeout: float = 120.0, as_json: bool = False) -> int:
    """Print a line per exercise; 0 when all visible tests pass, 1 otherwise, 2 if unreadable."""
    path = path.expanduser()
    try:
        outcomes, notes = run(path, timeout)
    except Unreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"exercises": [o.__dict__ for o in outcomes], "notes": notes}))
        return 0 if all(o.passed for o in outcomes) else 1
    failed = [o for o in outcomes if not o.passed]
    for o in failed:  # what costs points first
        lines = (o.message or "failed").strip().splitlines()
        print(f"  FAILED  {o.exercise} ({o.points:g} pt): {lines[0]}")
        for line in lines[1:6]:
            print(f"          {line}")
    for o in outcomes:
        if o.passed:
            print(f"  passed  {o.exercise} ({o.points:g} pt)")
    for note in notes:
        print(f"  note: {note}")
    got = sum(o.points for o in outcomes if o.passed)
    total = sum(o.points for o in outcomes)
    print(f"\n{path.name}: visible tests {'all passed' if not failed else f'failed in {len(failed)} exercise(s)'}"
          f" ({got:g} of {total:g} points from visible tests; hidden tests run at grading).")
    return 1 if failed else 0
