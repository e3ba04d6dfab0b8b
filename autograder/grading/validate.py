"""`python -m autograder validate NOTEBOOK`: what the grade will say about the visible tests, now.

Validate runs the grader's own path (:func:`.worker.grade_notebook`): the same assembly (the
instructor's cells restored, the student's answers put in), the same sandboxed kernel with the
assignment's Python path, the same judge and the same restrictions — with the visible tests only,
since the hidden ones need the course secret. It prints, first, what costs points: each failing
exercise with its points and the check's whole message, wrapped, never clipped (what was expected,
what came, where, what to look at); then the passed ones, the notes, and last the total on the
visible tests, what the hidden tests add and how long it took (:func:`report`; while it runs, a
line on a terminal's stderr counts the seconds). An exercise that breaks its own restriction comes
first, its message naming the cell and the line (:mod:`.restrictions`): what Validate says about
restrictions is exactly what the grade will apply.

The instructor's notebook it assembles against is the release (``assignments/``), which every
student has, found by the nbgrader grade_ids of the notebook's cells — whatever the file is
called (``a1_images_and_convolution (1).ipynb``, ``…-Copy1.ipynb``) — or, when every cell lost its
metadata, by the file's name. Test code only ever comes from that release: a notebook that matches
no assignment is refused with one line, never validated against test cells of its own (they would
run as the grader's code, outside the sandbox, as whoever pressed Validate).
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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


HIDDEN = "The hidden tests run at grading time on more cases; they decide the same points."
WIDTH = 80


def plural(n: float, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}"


def took(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{int(seconds // 60)} min {seconds % 60:02.0f} s"


def total_line(outcomes: list[Outcome]) -> str:
    """"visible tests: 19 of 25 points; 2 exercises fail (6 points)." """
    got = sum(o.points for o in outcomes if o.passed)
    total = sum(o.points for o in outcomes)
    failed = [o for o in outcomes if not o.passed]
    line = f"visible tests: {got:g} of {plural(total, 'point')}"
    if not failed:
        return line + "; all passed."
    lost = sum(o.points for o in failed)
    fail = "1 exercise fails" if len(failed) == 1 else f"{len(failed)} exercises fail"
    return line + f"; {fail} ({plural(lost, 'point')})."


def wrap(text: str, indent: str = "", width: int = WIDTH, hang: str = "    ") -> list[str]:
    """``text``'s lines wrapped to ``width`` (never clipped), each under ``indent`` plus its own
    leading spaces, a wrapped line's continuation ``hang`` further in."""
    out = []
    for line in text.strip("\n").splitlines() or [""]:
        lead = indent + " " * (len(line) - len(line.lstrip(" ")))
        out += textwrap.wrap(line.strip(), width, initial_indent=lead, subsequent_indent=lead + hang,
                             break_long_words=False, break_on_hyphens=False) or [lead.rstrip()]
    return out


def listing(head: str, items: list[str], indent: str = "", width: int = WIDTH) -> list[str]:
    """``head`` then ``items``, comma-separated, wrapped between items (never inside one)."""
    lines, line = [], indent + head
    for i, item in enumerate(items):
        item += "," if i < len(items) - 1 else ""
        if len(line) + 1 + len(item) > width and line.strip() != head.strip():
            lines.append(line)
            line = indent + "    " + item
        else:
            line += " " + item
    return lines + [line]


def failure_block(o: Outcome, head: str = "", indent: str = "    ", width: int = WIDTH) -> list[str]:
    """One failing exercise: ``head``, its name and points, then the check's whole message (or its
    restriction's), wrapped under ``indent``."""
    return [f"{head}{o.exercise} (0 of {plural(o.points, 'point')})",
            *wrap(o.message or "failed", indent, width)]


def report(name: str, outcomes: list[Outcome], notes: list[str], seconds: float | None = None,
           width: int = WIDTH) -> str:
    """What Validate prints: every failing exercise with its points and whole message (the
    restrictions first), the passed ones, the notes, then the total and what the hidden tests add."""
    failed = [o for o in outcomes if not o.passed]
    lines = []
    for o in failed:  # what costs points first
        lines += failure_block(o, "  FAILED  ", " " * 10, width)
    passed = [f"{o.exercise} ({plural(o.points, 'point')})" for o in outcomes if o.passed]
    if passed:
        lines += listing("passed:", passed, "  ", width)
    for note in notes:
        lines += wrap(f"note: {note}", "  ", width)
    timed = f" (validated in {took(seconds)})" if seconds is not None else ""
    lines += ["", f"{name}{timed}", *wrap(total_line(outcomes), "", width, ""),
              *wrap(HIDDEN, "", width, "")]
    return "\n".join(lines)


@contextlib.contextmanager
def ticking(what: str, stream=None) -> Iterator[None]:
    """While the block runs, "validating NAME… 12 s" on ``stream`` (stderr), redrawn each second
    when it is a terminal; nothing otherwise (a log or a pipe gets no carriage returns)."""
    stream = stream or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        yield
        return
    start, done = time.monotonic(), threading.Event()

    def tick() -> None:
        while True:
            stream.write(f"\r{what}… {time.monotonic() - start:.0f} s ")
            stream.flush()
            if done.wait(1.0):
                return

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        stream.write("\r\x1b[K")
        stream.flush()


def validate(path: Path, timeout: float = 120.0, as_json: bool = False) -> int:
    """Print the report (:func:`report`); 0 when all visible tests pass, 1 otherwise, 2 if unreadable."""
    path = path.expanduser()
    start = time.monotonic()
    try:
        with ticking(f"validating {path.name}"):
            outcomes, notes = run(path, timeout)
    except (Unreadable, NoRelease) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.monotonic() - start
    if as_json:
        print(json.dumps({"exercises": [o.__dict__ for o in outcomes], "notes": notes,
                          "points": sum(o.points for o in outcomes if o.passed),
                          "max_points": sum(o.points for o in outcomes), "seconds": round(seconds, 1)}))
        return 0 if all(o.passed for o in outcomes) else 1
    print(report(path.name, outcomes, notes, seconds))
    return 0 if all(o.passed for o in outcomes) else 1
