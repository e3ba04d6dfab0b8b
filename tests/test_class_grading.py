"""Every assignment's class through the real ``grade`` command, graded once per assignment.

The class (:mod:`tests.classes`) holds the solution, the blank release, every catalogued wrong
answer, the threats, the honest habits and — for a1 — malformed and hostile input. One test class
per assignment shares that one run (``make test`` uses ``--dist loadscope``, so a class stays on
one worker and the classes spread over the workers). The questions:

* do the solution and the blank release get full marks and 0, and does each catalogued wrong
  answer lose exactly the exercises the in-process run says it loses?
* does each threat end with the exact score of the honest work underneath it (never more), and
  each honest habit with full marks?
* does any feedback show hidden test code, a hidden seed, or a grader path; does any student text
  reach the HTML unescaped?
* do Validate and the grade give the same verdict on the visible tests?
* for a1: is every bad submission one line and its own row, and do bad usage and resubmissions
  leave recorded grades alone?
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import autograder as autograder_package
from autograder import secret
from autograder.grading import worker
from autograder.grading.notebooks import graded_cells
from autograder.grading.results import StudentResult
from autograder.grading.sandbox import BUBBLEWRAP, isolation

from . import classes
from .classes import CELL_TIMEOUT, Case
from .support import COURSE, ROOT, SECRET, autograder, graded_version, release_nb, run_cells, source_nb

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")]

A1 = "a1_images_and_convolution"
PACKAGE = Path(autograder_package.__file__).resolve().parent


def cli(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    return autograder(*args, timeout=timeout)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


@dataclass
class Graded:
    assignment: str
    subs: Path
    out: Path
    proc: subprocess.CompletedProcess
    cases: dict[str, Case]
    results: dict[str, StudentResult]
    before: dict[str, str]

    def feedback(self, student: str) -> str:
        (name,) = COURSE.notebooks(self.assignment)
        return (self.out / "feedback" / student / self.assignment / f"{name}.html").read_text()


@pytest.fixture(scope="class")
def graded(request, tmp_path_factory) -> Graded:
    """The requesting test class's assignment: its class written and graded once."""
    a = request.cls.assignment
    subs, out = tmp_path_factory.mktemp(f"{a}-subs"), tmp_path_factory.mktemp(f"{a}-out")
    cases = classes.build(a, subs)
    before = digests(subs)
    proc = cli("grade", a, str(subs), "--out", str(out), "--quiet", "--workers", "2",
               "--cell-timeout", str(CELL_TIMEOUT[a]))
    results = {p.stem: StudentResult.load(p) for p in (out / "results" / a).glob("*.json")}
    return Graded(a, subs, out, proc, {c.student: c for c in cases}, results, before)


def pytest_generate_tests(metafunc):
    if "student" in metafunc.fixturenames:
        names = [c.student for c in classes.cases_for(metafunc.cls.assignment) if c.kind in ("threat", "habit", "input")]
        metafunc.parametrize("student", names)


class ClassGradingTests:
    assignment: str

    def test_every_student_has_a_result_and_the_batch_finished(self, graded):
        assert set(graded.results) == set(graded.cases), graded.proc.stderr[-3000:]
        assert graded.proc.returncode in (0, 1), graded.proc.stderr[-3000:]
        assert "Per student:" in graded.proc.stdout
        max_score = sum(p for _, p in graded_cells(source_nb(self.assignment)))
        assert f"  correct: graded, {max_score:g}/{max_score:g}" in graded.proc.stdout

    def test_solution_full_marks_and_blank_zero(self, graded):
        full = sum(p for _, p in graded_cells(source_nb(self.assignment)))
        correct, untouched = graded.results["correct"], graded.results["untouched"]
        assert (correct.status, correct.score) == ("graded", full), correct.notes()
        assert (untouched.status, untouched.score) == ("graded", 0)
        assert all("not implemented yet" in c.reason for c in untouched.cells)

    def test_every_wrong_answer_loses_exactly_what_the_in_process_run_loses(self, graded):
        """Does each catalogued wrong answer cost its exercise (with a message naming its function) and
        exactly the exercises the notebook's own test cells fail?"""
        for case in graded.cases.values():
            if case.kind != "round":
                continue
            r = graded.results[case.student]
            lost = {c.grade_id: c for c in r.lost()}
            for wa in case.group:
                assert wa.exercise in lost and lost[wa.exercise].points == 0, f"{wa.id} kept its points"
                assert any(n in lost[wa.exercise].reason for n in wa.names), (wa.id, lost[wa.exercise].reason)
            solutions = classes.Assignment(self.assignment).sol
            (salt,) = self._salts(graded, case.student)  # the hidden cases this student's submission drew
            with secret.using(SECRET.encode(), salt):
                verdicts = run_cells(graded_version(self.assignment, {wa.cell: wa.apply(solutions[wa.cell])
                                                                      for wa in case.group}))
            assert set(lost) == {gid for gid, v in verdicts.items() if not v.passed}, case.student

    def test_outcome(self, graded, student):
        """Does this threat, habit or bad input end with exactly the score (and the reasons) it should?"""
        case = graded.cases[student]
        if student == "kills_its_parent" and isolation() != BUBBLEWRAP:
            pytest.skip("without bubblewrap the kernel's parent is the worker: that student gets an error row")
        r = graded.results[student]
        lost = {c.grade_id: c.reason for c in r.lost()}
        assert r.status == case.status, (r.status, r.message)
        if case.score is not None:
            assert r.score == case.score, f"{student}: {r.score} != {case.score}; lost: {lost}; notes: {r.message}"
        if case.at_most is not None:
            assert r.score <= case.at_most, f"{student}: {r.score} > {case.at_most}; lost: {lost}"
        for exercise, words in case.lost.items():
            assert exercise in lost and words in lost[exercise], f"{student}/{exercise}: {lost.get(exercise)!r}"
        assert case.note in r.message or case.note in " ".join(lost.values()), (r.message, lost)

    def test_every_lost_point_has_a_reason_in_grades_csv(self, graded):
        rows = {row["student"]: row for row in csv.DictReader((graded.out / "grades.csv").open())}
        assert set(rows) == set(graded.results)
        for student, r in graded.results.items():
            assert all(c.reason for c in r.lost())
            if r.lost():
                assert rows[student]["notes"], student

    def test_feedback_shows_no_hidden_test_code_seed_or_grader_path(self, graded):
        """Is every feedback page and graded notebook free of the hidden tests, their seeds and the
        grader's own paths?"""
        source = source_nb(self.assignment)
        gids = [gid for gid, _ in graded_cells(source)]
        seeds = {str(secret.seed(SECRET.encode(), self.assignment, gid, salt=salt))
                 for gid in gids for salt in ["", *self._salts(graded)]}
        files = [*(graded.out / "feedback").rglob("*.html"), *(graded.out / "nbgrader" / "autograded").rglob("*.ipynb")]
        assert len(files) >= len(graded.results)
        typed = {s for s in graded.results if any(str(ROOT) in p.read_text(errors="replace")
                                                   for p in (graded.subs / s).rglob("*.ipynb")
                                                   if p.is_file() and not p.is_symlink())}
        for path in files:
            text = path.read_text()
            student = path.relative_to(graded.out).parts[1 if path.suffix == ".html" else 2]
            # the grader's own files (a kernel's stub for a module it lacks lives elsewhere and may show)
            leaks = ["hidden_seed", "HIDDEN TESTS", "autograder/suites/a", "autograder/grading", str(PACKAGE / "suites"),
                     sys.prefix]
            if student not in typed:  # a student who typed the course's path sees it in their own code
                leaks.append(str(ROOT))
            for leak in leaks:
                assert leak not in text, (path, leak)
            found = seeds & set(re.findall(r"\d{5,20}", text))
            assert not found, (path, found)

    @staticmethod
    def _salts(graded, *students: str) -> list[str]:
        """The hidden-seed salt of every student (or of ``students``), as the worker makes it: their id and
        their submission's bytes."""
        (name,) = COURSE.notebooks(graded.assignment)
        salts = []
        for student in students or graded.results:
            for path in (graded.subs / student).rglob(f"{name}.ipynb"):
                salts.append(secret.submission_salt(student, worker.digest(path.parent, [name], "")))
        return salts

    def test_the_hidden_part_says_nothing_but_its_verdict(self, graded):
        """Does nothing printed or raised while the hidden cases ran reach the feedback, the graded
        notebooks, grades.csv or the gradebook, while the visible part's output still shows?"""
        if "hidden_leak" not in graded.results:
            pytest.skip("the leak attack is in a1's class")
        files = [*(graded.out / "feedback").rglob("*.html"), *(graded.out / "nbgrader" / "autograded").rglob("*.ipynb"),
                 graded.out / "grades.csv", *graded.out.glob("gradebook*")]
        for path in files:
            data = path.read_bytes()
            assert b"HIDDENPRINT" not in data and b"HIDDENRAISE" not in data, path
        assert "VISIBLEPRINT" in graded.feedback("hidden_leak")
        reason = next(c.reason for c in graded.results["hidden_leak"].cells if c.grade_id == "layout")
        assert re.match(r"hidden cases: \d+ of \d+ cases failed — your code raised ValueError\.\n", reason), reason

    def test_student_text_is_escaped_in_feedback(self, graded):
        page = graded.feedback("html_everywhere")
        assert not re.search(r"<script>\s*alert", page)
        assert not re.search(r"<[a-z][^<>]*\son[a-z]+\s*=", page, re.IGNORECASE)  # no event handler in any tag
        assert not re.search(r"href\s*=\s*[\"']?\s*javascript:", page, re.IGNORECASE)
        assert "&lt;script&gt;" in page  # the text is there, as text

    def test_the_release_header_is_the_instructors_in_every_graded_notebook_and_page(self, graded):
        """Is the release's "Generated file / How this notebook is graded" cell the instructor's cell —
        rendered as markdown in the feedback, never escaped or shown as a student's text?"""
        header = release_nb(self.assignment).cells[0].source
        assert "Generated file." in header
        (name,) = COURSE.notebooks(self.assignment)
        for student, r in graded.results.items():
            if r.status != "graded":
                continue
            nb = nbformat.read(graded.out / "nbgrader" / "autograded" / student / self.assignment / f"{name}.ipynb",
                               as_version=4)
            copies = [c for c in nb.cells if "Generated file." in c.source and c.cell_type == "markdown"]
            assert [(c.source, c.metadata["autograder"]["role"]) for c in copies] == [(header, "instructor")], student
            page = graded.feedback(student)
            assert "<strong>Generated file.</strong>" in page, student
            assert "&gt; **Generated" not in page and "&#42;&#42;Generated" not in page, student

    def test_submissions_are_byte_identical(self, graded):
        assert digests(graded.subs) == graded.before

    def test_the_gradebook_has_one_submission_per_student_with_its_score(self, graded):
        db = sqlite3.connect(graded.out / "gradebook.db")
        rows = db.execute("select student.id, count(*) from submitted_assignment join student "
                          "on submitted_assignment.student_id = student.id group by student.id").fetchall()
        assert dict(rows) == {s: 1 for s in graded.results}
        got = dict(db.execute(
            "select submitted_assignment.student_id, sum(coalesce(grade.manual_score, grade.auto_score)) from grade "
            "join submitted_notebook on grade.notebook_id = submitted_notebook.id join submitted_assignment on "
            "submitted_notebook.assignment_id = submitted_assignment.id group by submitted_assignment.student_id"))
        assert got == {s: r.score for s, r in graded.results.items()}

    def test_validate_and_grade_give_the_same_visible_verdicts(self, graded):
        """Does Validate (the student's button) say, per exercise, what the grade says of the visible
        tests: the same failures with the same message, and passes where the grade only fails hidden cases?"""
        (name,) = COURSE.notebooks(self.assignment)
        for student in ("correct", "untouched", "round01", "honest_habits"):
            folder = graded.subs / student
            path = folder / self.assignment / f"{name}.ipynb" if (folder / self.assignment).is_dir() \
                else folder / f"{name}.ipynb"
            proc = cli("validate", str(path), "--json", timeout=1200)
            assert proc.returncode in (0, 1), proc.stderr[-2000:]
            said = {e["exercise"]: e for e in json.loads(proc.stdout)["exercises"]}
            graded_cells_ = {c.grade_id: c for c in graded.results[student].cells}
            assert set(said) == set(graded_cells_)
            for gid, v in said.items():
                cell = graded_cells_[gid]
                if v["passed"]:
                    assert cell.points == cell.max_points or "hidden tests" in cell.reason, (student, gid, cell.reason)
                else:
                    assert cell.points == 0 and cell.reason.splitlines()[0] == v["message"].splitlines()[0], \
                        (student, gid, v["message"], cell.reason)


for _a in COURSE.assignment_ids():
    if _a == A1:
        continue  # below, with the bad-input questions
    _name = "Test" + _a.split("_")[0].capitalize()
    globals()[_name] = type(_name, (ClassGradingTests,), {"assignment": _a, "__module__": __name__})


class TestA1(ClassGradingTests):  # a1's class, with the bad-input questions too
    assignment = A1

    def test_exit_status_and_one_line_per_bad_submission(self, graded):
        proc = graded.proc
        assert proc.returncode == 1, proc.stderr[-3000:]
        bad = [line for line in proc.stderr.splitlines() if line.startswith("bad submission:")]
        expected = [c.student for c in graded.cases.values() if c.status != "graded"] + \
            ["notes.txt", "bad name!", "linked_folder"]
        for name in expected:
            assert any(name in line for line in bad), (name, bad)
        assert len(bad) == len(expected)
        assert all("\n" not in r.message for r in graded.results.values() if r.status != "graded")

    def test_unreadable_notebooks_get_their_own_error_page(self, graded):
        for case in graded.cases.values():
            if case.status != "graded":
                page = graded.feedback(case.student)
                assert case.note in page and "Score: 0" in page

    def test_grades_csv_columns(self, graded):
        with (graded.out / "grades.csv").open() as fh:
            rows = {row["student"]: row for row in csv.DictReader(fh)}
        exercises = [gid for gid, _ in graded_cells(source_nb(A1))]
        row = rows["correct"]
        assert list(row)[:7] == ["student", "assignment", "status", "score", "max_score", "auto_score", "hand_graded"]
        assert list(row)[7:-4] == exercises
        assert (row["score"], row["auto_score"], row["hand_graded"]) == ("25", "25", "no")  # no hand grades
        assert list(row)[-4:] == ["submitted_at", "seconds_late", "late_penalty", "notes"]
        assert row["submitted_at"] == "" and row["late_penalty"] == "0"  # no timestamps, no due date
        assert rows["untouched"]["score"] == "0" and "not implemented yet" in rows["untouched"]["notes"]
        assert rows["truncated"]["status"] == "unreadable" and "not valid JSON" in rows["truncated"]["notes"]

    def test_table_and_isolation_line_printed(self, graded):
        stdout = graded.proc.stdout
        assert "Why points were lost:" in stdout
        line = next(l for l in stdout.splitlines() if l.startswith("correct "))
        assert line.rstrip().endswith("graded")
        if isolation() == BUBBLEWRAP:
            assert "kernels ran in bubblewrap" in stdout

    def test_bad_resubmission_keeps_the_recorded_grade(self, graded, tmp_path):
        out = graded.out
        before = (out / "grades.csv").read_text()
        (tmp_path / "again" / "correct").mkdir(parents=True)
        (tmp_path / "again" / "correct" / f"{A1}.ipynb").write_text("{ not json")
        proc = cli("grade", A1, str(tmp_path / "again"), "--out", str(out), "--quiet")
        assert proc.returncode == 1 and "earlier grade kept" in proc.stderr
        r = StudentResult.load(out / "results" / A1 / "correct.json")
        assert (r.status, r.score) == ("graded", 25) and "earlier grade kept" in r.message
        after = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
        old = {row["student"]: row for row in csv.DictReader(before.splitlines())}
        assert after["correct"]["score"] == old["correct"]["score"]
        assert {k: v for k, v in after.items() if k != "correct"} == {k: v for k, v in old.items() if k != "correct"}

    def test_validate_names_the_restricted_line_first(self, graded):
        """Does Validate print first the exercise a respelled np.pad costs, with its points, the cell
        and the line, and does the grade say the same?"""
        path = graded.subs / "pad_star_import" / f"{A1}.ipynb"
        proc = cli("validate", str(path), timeout=1200)
        assert proc.returncode == 1, proc.stderr[-2000:]
        lines = proc.stdout.lstrip("\n").splitlines()
        assert lines[0] == "  FAILED  pad2d (0 of 3 points)", proc.stdout
        block = " ".join(line.strip() for line in lines[1:next(i for i, line in enumerate(lines[1:], 1)
                                                               if not line.startswith(" " * 10))])
        assert block.startswith("pad2d: this exercise must be written without numpy.pad — "
                                "pad2d_code: line 1: imports * from numpy, which brings in pad"), proc.stdout
        reason = next(c.reason for c in graded.results["pad_star_import"].cells if c.grade_id == "pad2d")
        assert " ".join(reason.splitlines()[0].split()) in block

    @pytest.mark.parametrize("args, message", [
        (["grade", "a9_nope", "{subs}", "--out", "{out}"], "unknown assignment 'a9_nope'"),
        (["grade", A1, "/nonexistent/submissions", "--out", "{out}"], "does not exist"),
        (["grade", A1, "{subs}/notes.txt", "--out", "{out}"], "is a file"),
        (["grade", A1, "{subs}", "--out", "{subs}/notes.txt"], "is a file"),
        (["grade", A1, "{subs}", "--out", "{subs}/inside"], "inside"),
        (["grade", A1, "{empty}", "--out", "{out}"], "no student folders"),
    ])
    def test_bad_usage_is_one_line_and_changes_nothing(self, graded, tmp_path, args, message):
        before = (graded.out / "grades.csv").read_text()
        (tmp_path / "empty").mkdir()
        fmt = dict(subs=graded.subs, out=graded.out, empty=tmp_path / "empty")
        proc = cli(*[a.format(**fmt) for a in args])
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
        assert (graded.out / "grades.csv").read_text() == before
        assert not (graded.subs / "inside").exists()

