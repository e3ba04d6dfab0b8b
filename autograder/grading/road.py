"""One grading road: nbgrader's own commands and formgrader's buttons, with the judge inside.

``grade … --out OUT`` writes an ``nbgrader_config.py`` (:mod:`.formgrader`) that routes nbgrader's
grading steps, wherever they are started in OUT — formgrader's Autograde, Generate Feedback and
Release Feedback buttons, or ``nbgrader autograde`` / ``generate_feedback`` / ``release_feedback`` on
the command line — to the grader's own:

* **Autograde** keeps nbgrader's converter (which submissions, ``--force``, timestamps, the student
  in the gradebook) but none of its preprocessors: no ``Execute`` (no kernel of nbgrader's, so no
  student code outside the sandbox and no hidden test in a student's kernel), no ``SaveAutoGrades``.
  Its one sanitising step, :class:`Judge`, grades the student with ``autograde.grade`` — the command
  line's path: the worker, the judge, the sandbox, the result JSON, the graded notebook, the
  feedback page, the gradebook's scores and grades.csv — and hands nbgrader back the graded
  notebook the worker wrote, which nbgrader writes in its place unchanged; :class:`Judged`, its one
  autograding step, refuses any notebook that did not come from the judge.
* **Generate Feedback** renders the graded notebook with :class:`FeedbackPage`: the grader's own
  sanitised page (:mod:`.feedback`: visible tests only, student text inert, MathJax offline).
* **Release Feedback** (:class:`ReleaseFeedback`) is nbgrader's exchange, which hands each student's
  page to that student alone (by the secret their ``nbgrader submit`` kept); a student whose
  submission did not come through the exchange (no ``submission_secret.txt``) is named and left out
  instead of stopping the release.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
from nbconvert.exporters import Exporter
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode, default

from . import feedback

REPORT_ID = "grading-report"  # the first cell of every notebook the judge graded (feedback.report_cell)
ROUTE = {  # what formgrader.CONFIG sets, checked before formgrader starts
    "Autograde.sanitize_preprocessors": ["autograder.grading.road.Judge"],
    "Autograde.autograde_preprocessors": ["autograder.grading.road.Judged"],
    "GenerateFeedback.preprocessors": [],
    "GenerateFeedback.exporter_class": "autograder.grading.road.FeedbackPage",
    "ExchangeFactory.release_feedback": "autograder.grading.road.ReleaseFeedback",
}


def route_config(out: str | Path, course_root: str | Path) -> str:
    """The lines of an ``nbgrader_config.py`` that route a course directory's grading to the judge,
    the grader's record going to ``out`` (any course dir of nbgrader's: a hub's too)."""
    lines = [f"c.{key} = {value!r}" for key, value in ROUTE.items()]
    lines += [f"c.Judge.out = {str(out)!r}", f"c.Judge.course = {str(course_root)!r}"]
    return "\n".join(lines) + "\n"


class NotJudged(Exception):
    """A notebook that the judge did not grade reached one of nbgrader's grading steps."""


def settings_path(out: Path, assignment: str) -> Path:
    return out / "nbgrader" / ".settings" / f"{assignment}.json"


def save_settings(out: Path, assignment: str, settings: dict) -> None:
    """What ``grade`` was run with (time limits, kernel limits), so that a grade started from
    nbgrader gives the same verdicts."""
    path = settings_path(out, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=1))


def load_settings(out: Path, assignment: str) -> dict:
    try:
        return json.loads(settings_path(out, assignment).read_text())
    except (OSError, ValueError):
        return {}


def judged(nb) -> bool:
    cells = nb.get("cells") or []
    return bool(cells) and cells[0].get("id") == REPORT_ID and cells[0].get("cell_type") == "markdown"


def grade_students(out: Path, course_root: Path, assignment: str, students: list[str], db_url: str | None,
                   submitted: Path) -> dict:
    """``autograde.grade`` into ``out`` on these students of nbgrader's ``submitted`` folder
    (regraded: nbgrader decided that they are to be graded). Returns student -> (result, the graded
    notebooks by name)."""
    from ..course import Course
    from .autograde import DEFAULT_CELL_TIMEOUT, DEFAULT_SUBMISSION_TIMEOUT, grade
    from .sandbox import Limits

    settings = load_settings(out, assignment)
    limits = settings.get("limits")
    report = grade(Course(course_root), assignment, submitted, out,
                   cell_timeout=settings.get("cell_timeout", DEFAULT_CELL_TIMEOUT),
                   submission_timeout=settings.get("submission_timeout", DEFAULT_SUBMISSION_TIMEOUT),
                   limits=Limits(**limits) if limits else None, regrade=True, show_progress=False,
                   db_url=db_url, students=students, workers=min(len(students), max(1, (os.cpu_count() or 1) // 2)))
    graded = {}
    for result in report.graded_now:
        folder = out / "nbgrader" / "autograded" / result.student / assignment
        notebooks = {}
        if result.status == "graded":
            for path in sorted(folder.glob("*.ipynb")):
                notebooks[path.stem] = nbformat.read(path, as_version=4)
        graded[result.student] = (result, notebooks)
    return graded


def to_grade(converter, assignment: str, student: str) -> list[str]:
    """The students of ``assignment`` that nbgrader's Autograde will certainly grade in this run,
    ``student`` first: with ``--force`` all it found, otherwise those it never graded (one grade
    run for them all instead of one per student; the others are graded when nbgrader reaches them)."""
    import re

    coursedir = converter.coursedir
    excluded = set(filter(None, (coursedir.student_id_exclude or "").split(",")))
    pattern = converter._format_source("(?P<assignment_id>.*)", "(?P<student_id>.*)", escape=True)
    found = [student]
    for path in sorted(getattr(converter, "assignments", {}) or {}):
        m = re.match(pattern, path)
        if not m or m["assignment_id"] != assignment or m["student_id"] in excluded or m["student_id"] in found:
            continue
        dest = os.path.normpath(converter._format_dest(assignment, m["student_id"]))
        if converter.force or not os.path.exists(dest):
            found.append(m["student_id"])
    return found


class Judge(Preprocessor):
    """nbgrader Autograde's only sanitising step: the student is graded by the judge, and the
    notebook handed on is the graded notebook the worker wrote (the submission's own is dropped)."""

    enabled = Bool(True)
    out = Unicode(help="the graded class's folder (grade --out)").tag(config=True)
    course = Unicode(help="the course root (its solutions/ and assignments/)").tag(config=True)

    def preprocess(self, nb, resources):
        meta = resources["nbgrader"]
        student, assignment, notebook = meta["student"], meta["assignment"], meta["notebook"]
        if not self.out or not self.course:
            raise NotJudged("this course directory's nbgrader_config.py does not say where the grader is "
                            "(Judge.out, Judge.course): run `python -m autograder grade` again to rewrite it")
        out = Path(self.out)
        converter = getattr(self.parent, "parent", None)  # nbgrader's Autograde: one grade per student per run
        coursedir = getattr(converter, "coursedir", None)
        if coursedir is None:
            raise NotJudged("the Judge step runs only inside nbgrader's Autograde")
        submitted = Path(coursedir.root) / coursedir.submitted_directory  # what nbgrader is grading
        done = converter.__dict__.setdefault("_autograder_judged", {})
        if (assignment, student) not in done:
            batch = to_grade(converter, assignment, student)
            self.log.info("Grading %s's %s with the judge, in the sandbox", ", ".join(batch), assignment)
            graded = grade_students(out, Path(self.course), assignment, batch, meta.get("db_url"), submitted)
            for who, (result, notebooks) in graded.items():
                done[(assignment, who)] = (result, notebooks)
                self.log.info("%s: %s, %g / %g%s", who, result.status, result.score, result.max_score,
                              f" ({result.message})" if result.message else "")
        if (assignment, student) not in done:
            raise NotJudged(f"{student}: the grader found no usable submission of {assignment} in {submitted} "
                            "(a student id of letters, digits and . _ @ + - only)")
        result, notebooks = done[(assignment, student)]
        if result.status != "graded":
            raise NotJudged(f"{student}'s {assignment} could not be graded ({result.status}: {result.message}); "
                            f"recorded as 0, its page: feedback/{student}/{assignment}/")
        if notebook not in notebooks:
            raise NotJudged(f"{student}'s {notebook}: {result.message or 'no graded notebook'}; the grade recorded "
                            "earlier is kept")
        graded = notebooks[notebook]
        if not judged(graded):
            raise NotJudged(f"{student}'s {notebook} is not a notebook the judge graded")
        return graded, resources


class Judged(Preprocessor):
    """nbgrader Autograde's only autograding step: the notebook must be the judge's (nothing runs)."""

    enabled = Bool(True)

    def preprocess(self, nb, resources):
        if not judged(nb):
            raise NotJudged("nbgrader's Autograde reached a notebook the judge did not grade; this course "
                            "directory grades only through the judge (see its nbgrader_config.py)")
        return nb, resources


class FeedbackPage(Exporter):
    """nbgrader GenerateFeedback's exporter: the grader's own sanitised page of a graded notebook."""

    output_mimetype = "text/html"
    export_from_notebook = None

    @default("file_extension")
    def _file_extension_default(self):
        return ".html"

    def from_notebook_node(self, nb, resources=None, **kw):
        nb_copy, resources = super().from_notebook_node(nb, resources, **kw)
        if not judged(nb_copy):
            raise NotJudged("feedback is made only from notebooks the judge graded: autograde this "
                            "submission again")
        meta = (resources or {}).get("nbgrader") or {}
        if meta.get("db_url"):
            cell = hand_grading_cell(meta["db_url"], meta["assignment"], meta["notebook"], meta["student"])
            if cell is not None:
                nb_copy.cells.insert(1, cell)
        return feedback.page(nb_copy), resources


def code_name(name: str) -> str:
    """A cell's name (the instructor's grade id) inside a markdown code span, as the report shows it:
    a code span shows entities literally (``layout&#95;code``), so nothing is escaped but the
    backticks that would end it."""
    return name.replace("`", "'")


def hand_grading_cell(db_url: str, assignment: str, notebook: str, student: str):
    """What a grader added in formgrader — a score given by hand, extra credit, a comment — as a
    markdown cell under the report (their words shown as typed: ``feedback.inert``); None when
    nothing was added."""
    from nbgrader.api import Gradebook, MissingEntry

    try:
        with Gradebook(db_url) as gb:
            sub = gb.find_submission_notebook(notebook, assignment, student)
            grades = [(g.name, g.auto_score, g.manual_score, g.extra_credit, g.max_score) for g in sub.grades]
            comments = [(c.name, c.manual_comment) for c in sub.comments if (c.manual_comment or "").strip()]
            total, most = sub.score, sub.max_score
    except MissingEntry:
        return None
    changed = [g for g in grades if g[2] is not None and g[2] != g[1] or g[3]]
    if not changed and not comments:
        return None
    lines = ["## Hand grading", "", f"**Score after hand grading: {total:g} / {most:g}.**", ""]
    for name, auto, manual, extra, max_score in changed:
        parts = []
        if manual is not None and manual != auto:
            parts.append(f"{manual:g} / {max_score:g} given by hand (the grader's tests gave {auto or 0:g})")
        if extra:
            parts.append(f"+{extra:g} extra credit")
        lines.append(f"- `{code_name(name)}`: {'; '.join(parts)}")
    for name, text in comments:
        words = "<br>".join(feedback.inert(line) for line in text.strip().splitlines())
        lines.append(f"- `{code_name(name)}`, your grader's comment: {words}")
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.id = "hand-grading"
    return cell


def _release_feedback_class():
    from nbgrader.exchange.default.release_feedback import ExchangeReleaseFeedback

    class ReleaseFeedback(ExchangeReleaseFeedback):
        """nbgrader's release of feedback through its exchange, leaving out (by name, with the
        reason) each student whose page cannot be handed to them alone: a submission that did not
        come through ``nbgrader submit`` has no secret to release it under."""

        def copy_files(self):
            import glob

            left_out = []
            for folder in sorted(glob.glob(self.src_path)):
                student = Path(folder).parent.name
                missing = [n for n in ("timestamp.txt", "submission_secret.txt")
                           if not os.path.isfile(os.path.join(folder, n))]
                if missing and glob.glob(os.path.join(folder, "*.html")):
                    left_out.append(student)
                    self.log.warning("Not releasing %s's feedback: the submission did not come through the "
                                     "exchange (no %s); hand it over from %s", student, " or ".join(missing), folder)
            before = self.coursedir.student_id_exclude
            self.coursedir.student_id_exclude = ",".join(x for x in [before, *left_out] if x)
            try:
                super().copy_files()
            finally:
                self.coursedir.student_id_exclude = before

    return ReleaseFeedback


ReleaseFeedback = _release_feedback_class()


def record_release(course_root: str | Path, assignment: str, db_url: str) -> bool:
    """The course's release of ``assignment`` in the gradebook (its exercises and points, as ``grade``
    records them), so that nbgrader's Autograde, which looks for the assignment there first, finds
    it; False when the release does not match the source (``grade`` then generates it)."""
    from ..course import Course
    from . import gradebook as books
    from .autograde import save_release_cells

    with books.locked(db_url):
        books.stamp(db_url)
        return save_release_cells(Course(Path(course_root)), assignment, db_url)


def _release_assignment_class():
    from nbgrader.exchange.default.release_assignment import ExchangeReleaseAssignment

    class ReleaseAssignment(ExchangeReleaseAssignment):
        """nbgrader's release through its exchange, which first records the release in the gradebook
        (a course whose releases are made by ``autograder release`` never ran nbgrader's
        generate_assignment, which records them): formgrader lists it and its Autograde finds it."""

        def copy_files(self):
            course = self.config.get("Judge", {}).get("course")
            if course:
                try:
                    recorded = record_release(course, self.coursedir.assignment_id, self.coursedir.db_url)
                except Exception as exc:  # noqa: BLE001 - one line, and no release
                    self.fail(f"could not record {self.coursedir.assignment_id} in the gradebook "
                              f"({self.coursedir.db_url}): {type(exc).__name__}: {exc}")
                if recorded:
                    self.log.info("Recorded %s in the gradebook", self.coursedir.assignment_id)
            super().copy_files()

    return ReleaseAssignment


ReleaseAssignment = _release_assignment_class()
