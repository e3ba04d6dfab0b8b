"""Grade a class: every student's submission through nbgrader autograde, then feedback and grades.csv.

Layout of the output folder ``OUT``::

    OUT/grades.csv                          one row per (student, assignment), kept across runs
    OUT/feedback/<student>/<assignment>/    HTML feedback per notebook
    OUT/results/<assignment>/<student>.json what was scored and why points were lost
    OUT/logs/<assignment>/<student>.log     nbgrader's output for that student
    OUT/gradebook.db                        nbgrader's gradebook (SQLite)
    OUT/nbgrader/                           nbgrader's course directory (submitted/, autograded/)

Each student is autograded by its own nbgrader process with a time limit, so a submission that
crashes or hangs costs only its own grade. Bad input — a wrong path, an unknown assignment — is
refused before anything is written; an unreadable notebook gets its own row and nothing else is
affected; a grade recorded by an earlier run is never replaced by an unreadable resubmission.
"""

from __future__ import annotations

import html
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..course import Course, UsageError
from .nbgrader_cli import flags, jupyter_home, nbgrader
from . import numpy_only
from .notebooks import Unreadable, graded_cells, nbgrader_meta, read_submission
from .progress import progress
from .results import (ERROR, GRADED, MISSING, UNREADABLE, CellResult, StudentResult, cell_results,
                      load_all, result_path, write_grades_csv)

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

DEFAULT_CELL_TIMEOUT = 120.0
DEFAULT_SUBMISSION_TIMEOUT = 900.0


@dataclass
class Submission:
    student: str
    folder: Path  # where the student's notebooks are


@dataclass
class ClassReport:
    assignment: str
    out: Path
    graded_now: list[StudentResult]  # the students of this run, in order
    exercises: list[tuple[str, float]]  # (grade_id, points) in notebook order
    bad_input: list[str]  # one line per submission that could not be read

    @property
    def grades_csv(self) -> Path:
        return self.out / "grades.csv"


def find_submissions(submissions_dir: Path, assignment: str) -> tuple[list[Submission], list[str]]:
    """Student folders in ``submissions_dir``: ``<student>/<notebook>.ipynb`` or
    ``<student>/<assignment>/<notebook>.ipynb`` (nbgrader's own layout). Returns the submissions and
    one line for each entry that is not a usable student folder."""
    if not submissions_dir.exists():
        raise UsageError(f"submissions folder {submissions_dir} does not exist")
    if not submissions_dir.is_dir():
        raise UsageError(f"{submissions_dir} is a file; pass the folder that holds one folder per student")
    found, skipped = [], []
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped.append(f"{entry.name}: a file at the top level, not a student folder; ignored")
            continue
        if not STUDENT_ID.match(entry.name):
            skipped.append(f"{entry.name!r}: not usable as a student id (letters, digits, . _ @ + - only); ignored")
            continue
        nested = entry / assignment
        found.append(Submission(entry.name, nested if nested.is_dir() else entry))
    if not found:
        raise UsageError(f"no student folders in {submissions_dir}; expected <student_id>/<notebook>.ipynb")
    return found, skipped


class ClassGrader:
    """nbgrader's course directory under OUT, and the settings every nbgrader call there gets."""

    def __init__(self, course: Course, assignment: str, out: Path, cell_timeout: float,
                 submission_timeout: float):
        self.course = course
        self.assignment = assignment
        self.out = out
        self.root = out / "nbgrader"
        self.cell_timeout = cell_timeout
        self.submission_timeout = submission_timeout
        self.db_url = f"sqlite:///{out / 'gradebook.db'}"
        self.notebooks = course.notebooks(assignment)
        self.env = jupyter_home(self.root / "home")
        self.settings = {
            "CourseDirectory.root": self.root,
            "CourseDirectory.source_directory": course.solutions,
            "CourseDirectory.release_directory": self.root / "release",
            "CourseDirectory.submitted_directory": "submitted",
            "CourseDirectory.autograded_directory": "autograded",
            "CourseDirectory.feedback_directory": out / "feedback",
            "CourseDirectory.db_url": self.db_url,
            "Execute.timeout": int(cell_timeout),
        }
        # Exercise ids and points come from the instructor's source, never from a submission.
        self.sources = {name: nbformat.read(course.solutions / assignment / f"{name}.ipynb", as_version=4)
                        for name in self.notebooks}
        self.cells = {name: graded_cells(nb) for name, nb in self.sources.items()}
        self.numpy_only = numpy_only.applies_to(assignment)

    @property
    def exercises(self) -> list[tuple[str, float]]:
        multi = len(self.notebooks) > 1
        return [(f"{nb}:{gid}" if multi else gid, pts) for nb in self.notebooks for gid, pts in self.cells[nb]]

    @property
    def max_score(self) -> float:
        return sum(p for _, p in self.exercises)

    def run(self, args: list[str], log: Path, timeout: float | None = None):
        return nbgrader([*args, *flags(self.settings)], cwd=self.course.root, env=self.env,
                        timeout=timeout, log=log)

    def prepare(self) -> None:
        """Record the assignment (cells, points, checksums) in OUT's gradebook."""
        self.root.mkdir(parents=True, exist_ok=True)
        run = self.run(["generate_assignment", self.assignment, "--force"],
                       log=self.out / "logs" / self.assignment / "_generate_assignment.log")
        if not run.ok:
            raise UsageError(f"could not prepare {self.assignment} for grading: "
                             f"{'; '.join(run.errors()[-2:]) or 'see the log in ' + str(self.out / 'logs')}")

    # -- one student --------------------------------------------------------------------------

    def grade_one(self, sub: Submission) -> tuple[StudentResult, str | None]:
        """Grade one submission; return its result and a line of bad-input report (or None)."""
        problems, status = [], GRADED
        for name in self.notebooks:
            path = sub.folder / f"{name}.ipynb"
            if not path.is_file():
                others = sorted(p.name for p in sub.folder.glob("*.ipynb"))
                status = MISSING
                problems.append(f"no {name}.ipynb in {sub.student}/"
                                + (f" (found: {', '.join(others)})" if others else " (no notebooks at all)"))
                continue
            try:
                read_submission(path)
            except Unreadable as exc:
                status = UNREADABLE if status == GRADED else status
                problems.append(str(exc))
        if problems:
            message = "; ".join(problems)
            previous = result_path(self.out, self.assignment, sub.student)
            if previous.is_file():
                kept = StudentResult.load(previous)
                if kept.status == GRADED:
                    kept.message = f"new submission rejected ({message}); earlier grade kept"
                    return kept, f"{sub.student}: {message} (earlier grade kept)"
            return self._zero(sub.student, status, message), f"{sub.student}: {message}"

        self._copy_in(sub)
        dest = self.root / "autograded" / sub.student / self.assignment
        shutil.rmtree(dest, ignore_errors=True)  # never read a previous run's output
        log = self.out / "logs" / self.assignment / f"{sub.student}.log"
        run = self.run(["autograde", self.assignment, "--student", sub.student, "--force"], log=log,
                       timeout=self.submission_timeout)
        autograded = [dest / f"{n}.ipynb" for n in self.notebooks]
        if run.timed_out or not run.ok:
            shutil.rmtree(dest, ignore_errors=True)
        if run.timed_out:
            return self._zero(sub.student, ERROR, f"grading stopped after {self.submission_timeout:g} s "
                                                  "(limit per submission)"), None
        if not run.ok or not all(p.is_file() for p in autograded):
            detail = "; ".join(run.errors()[-2:]) or f"nbgrader exited with status {run.returncode}"
            return self._zero(sub.student, ERROR, f"autograde failed: {detail} (log: {log})"), None
        if self.numpy_only:
            self._enforce_numpy_only(sub.student, autograded)
        return self._read_scores(sub.student, autograded), None

    def _enforce_numpy_only(self, student: str, autograded: list[Path]) -> None:
        """Zero every exercise whose code reaches for torch, scipy or a way around the rule, and put the
        reason at the top of its test cell's outputs, where the feedback and the results read it."""
        from nbgrader.api import Gradebook

        for name, path in zip(self.notebooks, autograded):
            submitted = nbformat.read(self.root / "submitted" / student / self.assignment / f"{name}.ipynb",
                                      as_version=4)
            charged = numpy_only.check_notebook(submitted, self.sources[name])
            if not charged:
                continue
            nb = nbformat.read(path, as_version=4)
            for cell in nb.cells:
                gid = nbgrader_meta(cell).get("grade_id")
                if gid in charged and not nbgrader_meta(cell).get("solution"):
                    cell.setdefault("outputs", []).insert(0, nbformat.v4.new_output(
                        "error", ename="NumPyOnly", evalue=numpy_only.explain(gid, charged[gid]), traceback=[]))
            path.chmod(0o644)
            nbformat.write(nb, path)
            path.chmod(0o444)
            with Gradebook(self.db_url) as gb:
                for gid in charged:
                    grade = gb.find_grade(gid, name, self.assignment, student)
                    grade.auto_score = 0
                    grade.manual_score = None
                gb.db.commit()

    def _copy_in(self, sub: Submission) -> None:
        """Copy only the assignment's notebooks (and nbgrader's timestamp) into submitted/."""
        dest = self.root / "submitted" / sub.student / self.assignment
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in self.notebooks:
            shutil.copyfile(sub.folder / f"{name}.ipynb", dest / f"{name}.ipynb")
        stamp = sub.folder / "timestamp.txt"
        if stamp.is_file():
            shutil.copyfile(stamp, dest / "timestamp.txt")

    def _read_scores(self, student: str, autograded: list[Path]) -> StudentResult:
        from nbgrader.api import Gradebook

        cells = []
        with Gradebook(self.db_url) as gb:
            for name, path in zip(self.notebooks, autograded):
                scores = {}
                for gid, _ in self.cells[name]:
                    grade = gb.find_grade(gid, name, self.assignment, student)
                    scores[gid] = grade.score or 0.0
                nb = nbformat.read(path, as_version=4)
                for c in cell_results(nb, scores, self.cells[name], self.cell_timeout):
                    if len(self.notebooks) > 1:
                        c.grade_id = f"{name}:{c.grade_id}"
                    cells.append(c)
        return StudentResult(student, self.assignment, GRADED, self.max_score, cells,
                             feedback=self._feedback_rel(student))

    def _zero(self, student: str, status: str, message: str) -> StudentResult:
        """Record 0 for every cell in the gradebook (as nbgrader does for a missing notebook)."""
        from nbgrader.api import Gradebook
        from sqlalchemy.exc import SAWarning

        with Gradebook(self.db_url) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush noise
            gb.update_or_create_student(student)
            submission = gb.update_or_create_submission(self.assignment, student)
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    grade.auto_score = 0
                    grade.manual_score = None
                    grade.needs_manual_grade = False
            gb.db.commit()
        cells = [CellResult(gid, 0.0, pts, f"not graded: {status}") for gid, pts in self.exercises]
        result = StudentResult(student, self.assignment, status, self.max_score, cells, message,
                               feedback=self._feedback_rel(student))
        self._write_error_feedback(result)
        return result

    def _feedback_rel(self, student: str) -> str:
        return f"feedback/{student}/{self.assignment}/"

    def _write_error_feedback(self, result: StudentResult) -> None:
        folder = self.out / "feedback" / result.student / self.assignment
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.notebooks:
            (folder / f"{name}.html").write_text(
                "<!doctype html><meta charset='utf-8'><title>Feedback</title>"
                f"<h1>{html.escape(self.assignment)}: {html.escape(name)}</h1>"
                f"<p><b>Score: 0 / {self.max_score:g}</b> ({html.escape(result.status)})</p>"
                f"<p>{html.escape(result.message)}</p>"
                "<p>Fix the problem and submit again; your notebook was not graded.</p>")

    # -- the class ------------------------------------------------------------------------------

    def feedback(self) -> None:
        """nbgrader's HTML feedback for every student with an autograded notebook."""
        if not any((self.root / "autograded").glob(f"*/{self.assignment}")):
            return
        run = self.run(["generate_feedback", self.assignment, "--force"],
                       log=self.out / "logs" / self.assignment / "_generate_feedback.log")
        if not run.ok:
            raise UsageError(f"generate_feedback failed: {'; '.join(run.errors()[-2:])}")


def grade(course: Course, assignment: str, submissions_dir: str | Path, out: str | Path, *,
          cell_timeout: float = DEFAULT_CELL_TIMEOUT, submission_timeout: float = DEFAULT_SUBMISSION_TIMEOUT,
          show_progress: bool = True) -> ClassReport:
    """Autograde every submission of ``assignment`` in ``submissions_dir`` into ``out``."""
    course.require(assignment)
    submissions_dir = Path(submissions_dir).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for grades and feedback")
    for protected in (course.solutions, course.assignments, submissions_dir):
        if out == protected or protected in out.parents:
            raise UsageError(f"--out {out} is inside {protected}; choose a folder of its own")
    submissions, skipped = find_submissions(submissions_dir, assignment)
    out.mkdir(parents=True, exist_ok=True)

    grader = ClassGrader(course, assignment, out, cell_timeout, submission_timeout)
    grader.prepare()
    now: list[StudentResult] = []
    bad: list[str] = list(skipped)
    bar = progress(submissions, desc=f"grade {assignment}", unit="student", enable=show_progress)
    for sub in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(sub.student)
        result, problem = grader.grade_one(sub)
        if problem:
            bad.append(problem)
        result.save(out)
        now.append(result)
    grader.feedback()

    columns: dict[str, list[str]] = {}
    everything = load_all(out)
    for a in sorted({r.assignment for r in everything} | {assignment}, key=_course_order):
        if a == assignment:
            columns[a] = [gid for gid, _ in grader.exercises]
        else:
            columns[a] = [c.grade_id for c in next(r for r in everything if r.assignment == a).cells]
    write_grades_csv(out, everything, columns)
    return ClassReport(assignment, out, now, grader.exercises, bad)


def _course_order(assignment: str) -> tuple[int, str]:
    head = assignment.split("_")[0][1:]
    return (int(head) if head.isdigit() else 10**6, assignment)
