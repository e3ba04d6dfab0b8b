"""Every assignment through the real grade command (sandboxed kernels, nbgrader's gradebook): the solution gets full marks, the blank release 0, and
every catalogued wrong answer loses exactly the points the in-process run says it loses.

a1 has its own, longer test of the pipeline (test_grading.py); the other assignments are graded
here as one class each: correct, untouched, and the wrong answers packed into a few submissions.
"""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, solution_sources, student_version
from autograder.grading.results import StudentResult

from .support import COURSE, ROOT, graded_version, release_nb, run_cells, source_nb

pytestmark = pytest.mark.slow

ASSIGNMENTS = [a for a in COURSE.assignment_ids() if a != "a1_images_and_convolution"]


def grade_class(a: str, tmp_path_factory) -> tuple[str, list, dict]:
    (name,) = COURSE.notebooks(a)
    subs, out = tmp_path_factory.mktemp(f"{a}-subs"), tmp_path_factory.mktemp(f"{a}-out")
    source, release = source_nb(a), release_nb(a)
    solutions = solution_sources(source)
    cat = catalogue.load(a)
    rounds = catalogue.rounds(cat.WRONG_ANSWERS, cat.DEPENDS)
    students = {"correct": student_version(release, source), "untouched": release}
    for i, group in enumerate(rounds, 1):
        students[f"round{i:02d}"] = student_version(release, source,
                                                    {wa.cell: wa.apply(solutions[wa.cell]) for wa in group})
    for student, nb in students.items():
        (subs / student).mkdir()
        nbformat.write(nb, subs / student / f"{name}.ipynb")
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", a, str(subs), "--out", str(out), "--quiet",
                           "--workers", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {p.stem: StudentResult.load(p) for p in (out / "results" / a).glob("*.json")}
    return a, rounds, results


@pytest.fixture(scope="class")
def graded(request, tmp_path_factory):
    """The class of the requesting test class's assignment, graded once."""
    return grade_class(request.cls.assignment, tmp_path_factory)


class ClassGradingTests:
    """One subclass per assignment (``make test`` spreads classes over the xdist workers)."""

    assignment: str

    def test_solution_full_marks_and_blank_zero(self, graded):
        a, _, results = graded
        full = sum(p for _, p in graded_cells(source_nb(a)))
        assert (results["correct"].status, results["correct"].score) == ("graded", full), results["correct"].notes()
        assert (results["untouched"].status, results["untouched"].score) == ("graded", 0)
        assert all("not implemented yet" in c.reason for c in results["untouched"].cells)

    def test_every_wrong_answer_loses_its_points_under_nbgrader(self, graded):
        a, rounds, results = graded
        solutions = solution_sources(source_nb(a))
        for i, group in enumerate(rounds, 1):
            r = results[f"round{i:02d}"]
            lost = {c.grade_id: c for c in r.lost()}
            for wa in group:
                assert wa.exercise in lost and lost[wa.exercise].points == 0, f"{wa.id} kept its points"
                assert any(n in lost[wa.exercise].reason for n in wa.names), (wa.id, lost[wa.exercise].reason)
            verdicts = run_cells(graded_version(a, {wa.cell: wa.apply(solutions[wa.cell]) for wa in group}))
            assert set(lost) == {gid for gid, v in verdicts.items() if not v.passed}, f"round{i:02d}"


for _a in ASSIGNMENTS:
    _name = "Test" + _a.split("_")[0].capitalize()
    globals()[_name] = type(_name, (ClassGradingTests,), {"assignment": _a, "__module__": __name__})
