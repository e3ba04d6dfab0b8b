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
student has, found by the nbgrader grade_ids of the notebook's cells — whatever the file is
called (``a1_images_and_convolution (1).ipynb``, ``…-Copy1.ipynb``) — or, when every cell lost its
metadata, by the file's name. Test code only ever comes from that release: a notebook that matches
no assignment is refused with one line, never validated against test cells of its own (they would
run as the grader's code, outside the sandbox, as whoever pressed Validate).
"""

from __future__ import annotations

import json
import re
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


class NoRelease(Exception):
    """The notebook is none of the course's: Validate has no instructor's tests to run on it."""


_COPY = re.compile(r"^(.*?)(?:-Copy\d+| ?\(\d+\)| copy(?: \d+)?)$")


def grade_ids(nb: dict) -> set[str]:
    """The nbgrader grade_ids of a notebook's cells."""
    ids = set()
    for cell in nb.get("cells", []):
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        nbgrader = meta.get("nbgrader") if isinstance(meta, dict) else None
        gid = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
        if isinstance(gid, str):
            ids.add(gid)
    return ids


def assignment_of(path: Path, nb: dict, course) -> tuple[str, Path]:
    """(assignment id, the instructor's notebook to assemble against) for the notebook at ``path``:
    the release that shares the most grade_ids with it (its name breaks a tie), else — no cell
    has a known grade_id — the one it is named after, a copy's suffix dropped; :class:`NoRelease`
    when there is none or the choice is not clear."""
    if course is None:
        raise NoRelease(f"{path.name}: no course folder found (nbgrader_config.py and solutions/), so there "
                        "are no instructor's tests to validate it with")
    mine = grade_ids(nb)
    copy = _COPY.match(path.stem)
    names = {path.stem, copy.group(1) if copy else path.stem}
    candidates = []
    for assignment in course.assignment_ids():
        for name in course.notebooks(assignment):
            release = course.assignments / assignment / f"{name}.ipynb"
            source = release if release.is_file() else course.solutions / assignment / f"{name}.ipynb"
            candidates.append((len(mine & grade_ids(_json(source))), name in names, assignment, source))
    best = max(((shared, named) for shared, named, _, _ in candidates), default=(0, False))
    chosen = [(a, s) for shared, named, a, s in candidates if (shared, named) == best and (shared or named)]
    if len(chosen) == 1:
        return chosen[0]
    if chosen:
        raise NoRelease(f"{path.name}: its cells match {' and '.join(a for a, _ in chosen)} equally; validate "
                        "the notebook you fetched for one assignment")
    raise NoRelease(f"{path.name} is none of the course's assignment notebooks (no cell carries an exercise's "
                    "grade_id, and its name is no assignment's): Validate runs only the instructor's tests, "
                    "so validate the notebook you fetched for the assignment")


def _json(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def run(path: Path, timeout: float = 120.0, budget: float = 900.0) -> tuple[list[Outcome], list[str]]:
    """Validate ``path``: an outcome per exercise, and the notes on what was restored.
    Raises :class:`.notebooks.Unreadable` or :class:`NoRelease` (one line each)."""
    from .worker import grade_notebook

    nb = read_submission(path)
    assignment, source_path = assignment_of(path, nb, course_of(path))
    source = nbformat.read(source_path, as_version=4)
    graded = grade_notebook(source, nb, assignment, limits=Limits(), cell_timeout=timeout,
                            deadline=time.monotonic() + budget, hidden=False)
    outcomes = [Outcome(v.grade_id, v.max_points, v.passed, v.message, v.grade_id in graded.charged)
                for v in graded.verdicts]
    return sorted(outcomes, key=lambda o: not o.restricted), graded.notes  # the restrictions first


def validate(path: Path, timeout: float = 120.0, as_json: bool = False) -> int:
    """Print a line per exercise; 0 when all visible tests pass, 1 otherwise, 2 if unreadable."""
    path = path.expanduser()
    try:
        outcomes, notes = run(path, timeout)
    except (Unreadable, NoRelease) as exc:
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
