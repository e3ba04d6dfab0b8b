"""The demo: the whole instructor pipeline on a sample class, end to end.

1. release every assignment (solutions/ -> assignments/);
2. build a sample class per assignment: a complete correct submission, the untouched release, one
   with a realistic bug from the catalogue, and one malformed (truncated) file;
3. autograde them with nbgrader, write HTML feedback and grades.csv;
4. print students × points with the reason for each lost point, and check the four outcomes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat

from .. import catalogue
from ..course import Course, UsageError
from .autograde import grade
from .notebooks import solution_sources, student_version
from .release import release
from .results import GRADED, UNREADABLE, render_table

MARKER = ".autograder-demo"

STUDENTS = {
    "correct": "a complete, correct submission",
    "untouched": "the release handed back unchanged",
    "buggy": "correct except for one realistic bug",
    "malformed": "a notebook file cut off halfway (invalid JSON)",
}


def build_class(course: Course, assignment: str, folder: Path) -> dict[str, str]:
    """Write the sample submissions for ``assignment`` into ``folder``; return student -> description."""
    notebooks = course.notebooks(assignment)
    bug = _demo_bug(assignment)
    for name in notebooks:
        source = nbformat.read(course.solutions / assignment / f"{name}.ipynb", as_version=4)
        released = nbformat.read(course.assignments / assignment / f"{name}.ipynb", as_version=4)
        answers = {}
        if bug is not None and bug.cell in solution_sources(source):
            answers = {bug.cell: bug.apply(solution_sources(source)[bug.cell])}
        versions = {
            "correct": nbformat.writes(student_version(released, source)),
            "untouched": nbformat.writes(released),
            "buggy": nbformat.writes(student_version(released, source, answers)),
        }
        versions["malformed"] = versions["correct"][: len(versions["correct"]) // 2]
        for student, text in versions.items():
            (folder / student).mkdir(parents=True, exist_ok=True)
            (folder / student / f"{name}.ipynb").write_text(text, encoding="utf-8")
    described = dict(STUDENTS)
    if bug is not None:
        described["buggy"] = f"correct except for one realistic bug ({bug.id})"
    return described


def _demo_bug(assignment: str):
    try:
        module = catalogue.load(assignment)
    except ModuleNotFoundError:
        return None
    return next(wa for wa in module.WRONG_ANSWERS if wa.id == module.DEMO_BUG)


def demo(course: Course, out: Path | None = None, assignment: str | None = None,
         show_progress: bool = True) -> int:
    """Run the demo; print the tables; return 0 when every sample submission graded as expected."""
    out = (out or course.work / "demo").expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UsageError(f"{out} is not empty and was not made by the demo; choose another --out")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by `python -m autograder demo`; deleted and rebuilt by each run\n")

    ids = [course.require(assignment)] if assignment else course.assignment_ids()
    print(f"Releasing {len(ids)} assignment(s) from {course.solutions.name}/ to {course.assignments.name}/ ...",
          flush=True)
    release(course, assignment, show_progress=show_progress)

    problems: list[str] = []
    for a in ids:
        students = build_class(course, a, out / "submissions" / a)
        print(f"\n== {a}: grading a sample class of {len(students)} ==", flush=True)
        for student, what in students.items():
            print(f"  {student:<10} {what}")
        report = grade(course, a, out / "submissions" / a, out / "graded", workers=min(4, os.cpu_count() or 1),
                       show_progress=show_progress)
        print()
        print(render_table(report.graded_now, report.exercises))
        problems += _check(report)

    print(f"\ngrades.csv: {out / 'graded' / 'grades.csv'}")
    print(f"feedback:   {out / 'graded' / 'feedback'}/<student>/<assignment>/")
    if problems:
        print("\nUNEXPECTED: " + "\n            ".join(problems))
        return 1
    print("\ndemo: every sample submission got the grade it should "
          "(correct = full marks, untouched = 0, buggy = partial, malformed = error row).")
    return 0


def _check(report) -> list[str]:
    by = {r.student: r for r in report.graded_now}
    full = sum(p for _, p in report.exercises)
    issues = []
    expect = {
        "correct": lambda r: r.status == GRADED and r.score == full,
        "untouched": lambda r: r.status == GRADED and r.score == 0,
        "buggy": lambda r: r.status == GRADED and 0 < r.score < full,
        "malformed": lambda r: r.status == UNREADABLE and r.score == 0,
    }
    for student, ok in expect.items():
        r = by.get(student)
        if r is None or not ok(r):
            got = "missing" if r is None else f"{r.status}, {r.score:g}/{full:g}"
            issues.append(f"{report.assignment}/{student}: got {got}")
    return issues
