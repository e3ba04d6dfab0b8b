"""What people do in formgrader stays, and what formgrader shows is right.

* **Hand grades survive the grader**: a manual score, extra credit and a comment entered as formgrader
  enters them (nbgrader's Gradebook API, and in the browser on formgrader's grading page) are still
  there after ``grade`` runs again — keeping the result (resume) or grading again (``--regrade``); where
  the automatic score under a hand grade changes, the cell is flagged for review; grades.csv shows the
  final score, the automatic one and whether a hand grade applies.
* **Names and times**: students' names and emails come from the course's roster
  (``c.Autograder.roster``), submission times from the submissions, in the gradebook and formgrader.
* **The release's header** ("Generated file / How this notebook is graded") is the instructor's cell in
  every graded notebook, feedback page and formgrader's grading page — rendered, not escaped.

One small class of a1 (two students, a course of its own with a roster), graded once and again.
"""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.course import Course, UsageError
from autograder.grading import roster
from autograder.grading.assemble import ADDED, INSTRUCTOR, assemble, role
from autograder.grading.release import frame
from autograder.grading.results import StudentResult

from .classes import Assignment
from .support import COURSE, autograder, course_copy, release_nb, source_nb

A1 = "a1_images_and_convolution"
HEADER = "> **Generated file.**"
STAMP = "2027-01-15 10:30:00.123456 UTC"


# ---------------------------------------------------------------------------------------------
# The header, assembled (no kernel)
# ---------------------------------------------------------------------------------------------

def header_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "markdown" and HEADER in c.source]


def test_the_release_header_is_put_back_as_the_instructors_cell():
    a = Assignment(A1)
    nb, notes = assemble(source_nb(A1), a.nb(), frame(COURSE))
    (cell,) = header_cells(nb)
    assert role(cell) == INSTRUCTOR and nb.cells.index(cell) == 0
    assert cell.source == release_nb(A1).cells[0].source and not notes


def test_a_student_cannot_pass_text_off_as_the_header():
    """A deleted header comes back; an edited one stays the student's (inert) beside the instructor's;
    a cell that only borrows the header's id is the student's."""
    a = Assignment(A1)
    deleted = a.nb()
    deleted.cells = [c for c in deleted.cells if HEADER not in c.source]
    nb, _ = assemble(source_nb(A1), deleted, frame(COURSE))
    assert [role(c) for c in header_cells(nb)] == [INSTRUCTOR]
    edited = a.nb()
    edited.cells[0].source += "\n\n<script>alert(1)</script>"
    fake = nbformat.v4.new_markdown_cell("# Full marks: 25/25")
    fake.id = "release-header"
    edited.cells.insert(1, fake)
    nb, _ = assemble(source_nb(A1), edited, frame(COURSE))
    roles = {c.source: role(c) for c in nb.cells if c.cell_type == "markdown"}
    assert roles[release_nb(A1).cells[0].source] == INSTRUCTOR
    assert roles[edited.cells[0].source] == ADDED and roles["# Full marks: 25/25"] == ADDED


def test_validate_against_the_release_drops_the_students_copy_of_the_header():
    nb, _ = assemble(release_nb(A1), Assignment(A1).nb())
    assert [role(c) for c in header_cells(nb)] == [INSTRUCTOR]


# ---------------------------------------------------------------------------------------------
# The roster (no grading)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (None, "does not exist"),
    ("name,email\nAda,a@x\n", "no 'id' column"),
    ("id,first_name\nada,Ada\nada,Ada\n", "row 3: student 'ada' appears twice"),
    ("id,first_name\n,Ada\n", "row 2: no student id"),
])
def test_a_roster_that_cannot_be_used_is_one_line(tmp_path, text, message):
    course = Course(course_copy(tmp_path, '\nc.Autograder.roster = "roster.csv"\n'))
    if text is not None:
        (tmp_path / "roster.csv").write_text(text)
    with pytest.raises(UsageError) as info:
        roster.read(course)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_roster_is_nbgraders_student_csv(tmp_path):
    course = Course(course_copy(tmp_path, '\nc.Autograder.roster = "roster.csv"\n'))
    (tmp_path / "roster.csv").write_text("id,first_name,last_name,email,lms_user_id\n"
                                         "ada,Ada,Lovelace,ada@example.org,\n bo ,,Bo,,\n")
    assert roster.read(course) == {"ada": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"},
                                   "bo": {"last_name": "Bo"}}
    assert roster.read(Course(COURSE.root)) == {}  # the checkout's course names no roster


# ---------------------------------------------------------------------------------------------
# A graded class, graded again
# ---------------------------------------------------------------------------------------------

class Class:
    def __init__(self, root: Path):
        (root / "course").mkdir()
        self.course = course_copy(root / "course", '\nc.Autograder.roster = "roster.csv"\n')
        (self.course / "roster.csv").write_text("id,first_name,last_name,email\n"
                                                "ada,Ada,Lovelace,ada@example.org\n"
                                                "cleo,Cleo,Patra,cleo@example.org\n"
                                                "dev,Dev,Absent,dev@example.org\n")
        self.a = Assignment(A1)
        self.subs, self.out = root / "subs", root / "out"
        nested = self.subs / "ada" / A1  # as `nbgrader collect` leaves it: with its timestamp.txt
        nested.mkdir(parents=True)
        nbformat.write(self.a.nb(), nested / self.a.nb_file)
        (nested / "timestamp.txt").write_text(STAMP)
        self.put("cleo", self.a.nb(dict([self.a.wrong(self.a.cat.WRONG_ANSWERS[0].label, "layout")])))

    def put(self, student: str, nb) -> None:
        folder = self.subs / student / A1 if (self.subs / student / A1).is_dir() else self.subs / student
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / self.a.nb_file)

    def grade(self, *extra: str):
        proc = autograder("--course", str(self.course), "grade", A1, str(self.subs), "--out", str(self.out),
                          "--quiet", "--workers", "2", *extra)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    def gradebook(self):
        from nbgrader.api import Gradebook

        return Gradebook(f"sqlite:///{self.out / 'gradebook.db'}")

    def hand(self, student: str, gid: str) -> tuple:
        """(auto, manual, extra credit, needs_manual_grade, the solution cell's manual comment)."""
        with self.gradebook() as gb:
            g = gb.find_grade(gid, A1, A1, student)
            c = gb.find_comment(f"{gid}_code", A1, A1, student)
            return g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade, c.manual_comment

    def rows(self) -> dict:
        with (self.out / "grades.csv").open() as fh:
            return {row["student"]: row for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> Class:
    c = Class(tmp_path_factory.mktemp("hand"))
    c.grade()
    return c


@pytest.mark.slow
def test_names_and_times_reach_the_gradebook_and_formgrader(graded_class):
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    c = graded_class
    with c.gradebook() as gb:
        students = {s.id: (s.first_name, s.last_name, s.email) for s in gb.students}
        assert gb.find_submission(A1, "ada").timestamp.isoformat(" ") == "2027-01-15 10:30:00.123456"
    assert students == {"ada": ("Ada", "Lovelace", "ada@example.org"), "cleo": ("Cleo", "Patra", "cleo@example.org"),
                        "dev": ("Dev", "Absent", "dev@example.org")}  # the roster's, a student without a submission too
    config = PyFileConfigLoader("nbgrader_config.py", path=str(c.out)).load_config()
    here = os.getcwd()
    os.chdir(c.out)
    try:
        api = NbGraderAPI(config=config)
        subs = {s["student"]: s for s in api.get_submissions(A1)}  # Manage Submissions
        listed = {s["id"]: s for s in api.get_students()}  # Manage Students
    finally:
        os.chdir(here)
    assert (subs["ada"]["first_name"], subs["ada"]["last_name"]) == ("Ada", "Lovelace")
    assert subs["ada"]["autograded"] and subs["ada"]["display_timestamp"].startswith("2027-01-15 10:30:00")
    assert subs["cleo"]["autograded"] and set(subs) == {"ada", "cleo"}
    assert (listed["dev"]["last_name"], listed["dev"]["email"]) == ("Absent", "dev@example.org")
    assert c.rows()["ada"]["submitted_at"] == "2027-01-15 10:30:00 UTC"


@pytest.mark.slow
def test_the_header_renders_as_the_instructor_wrote_it_everywhere(graded_class):
    c = graded_class
    for student in ("ada", "cleo"):
        nb = nbformat.read(c.out / "nbgrader" / "autograded" / student / A1 / c.a.nb_file, as_version=4)
        (cell,) = header_cells(nb)
        assert role(cell) == INSTRUCTOR and cell.source == release_nb(A1).cells[0].source
        page = (c.out / "feedback" / student / A1 / f"{A1}.html").read_text()
        assert "<blockquote>" in page and "<strong>Generated file.</strong>" in page
        assert "&gt; **Generated" not in page and "&#42;&#42;Generated" not in page
        assert "&amp;gt;" not in page and "&amp;#42;" not in page


@pytest.mark.slow
def test_hand_grades_survive_every_grade_run_and_are_flagged_when_the_automatic_score_changes(graded_class):
    c = graded_class
    with c.gradebook() as gb:  # what formgrader's grading page saves (GradeHandler, CommentHandler)
        g = gb.find_grade("pad2d", A1, A1, "ada")
        g.manual_score, g.extra_credit, g.needs_manual_grade = 2.5, 0.5, False
        gb.find_comment("pad2d_code", A1, A1, "ada").manual_comment = "Neat, but see the corners."
        gb.db.commit()
    kept = (3.0, 2.5, 0.5, False, "Neat, but see the corners.")
    proc = c.grade()  # resume: the result is kept
    assert "ada: graded, 25/25 (kept from an earlier run; with hand grades 25/25)" in proc.stdout, proc.stdout
    assert c.hand("ada", "pad2d") == kept
    row = c.rows()["ada"]
    assert (row["score"], row["auto_score"], row["hand_graded"], row["pad2d"]) == ("25", "25", "yes", "2.5")
    assert "pad2d: hand-graded 2.5/3 (automatic 3), +0.5 extra credit" in row["notes"]
    assert c.rows()["cleo"]["hand_graded"] == "no"

    c.grade("--regrade")  # graded again, the same automatic score: kept, not flagged
    assert c.hand("ada", "pad2d") == kept

    label = next(w.label for w in c.a.cat.WRONG_ANSWERS if w.exercise == "pad2d")
    c.put("ada", c.a.nb(dict([c.a.wrong(label, "pad2d")])))  # a resubmission whose pad2d now fails
    proc = c.grade()
    assert c.hand("ada", "pad2d") == (0.0, 2.5, 0.5, True, "Neat, but see the corners.")
    auto = StudentResult.load(c.out / "results" / A1 / "ada.json").score
    assert auto <= 22
    row = c.rows()["ada"]
    assert (row["score"], row["auto_score"], row["hand_graded"]) == (f"{auto + 3:g}", f"{auto:g}", "yes")
    assert "review it: the automatic score changed" in row["notes"]
    assert "review it" in proc.stdout
    with c.gradebook() as gb:
        assert gb.find_submission(A1, "ada").score == auto + 3  # what formgrader shows: the same


# ---------------------------------------------------------------------------------------------
# In formgrader, in the browser
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_grade_typed_in_formgrader_is_there_after_a_regrade(graded_class, request):
    from .test_browser import CHROMIUM, Server, page_for

    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    c = graded_class
    with c.gradebook() as gb:
        notebook_id = gb.find_submission_notebook(A1, A1, "cleo").id
    server = Server([sys.executable, "-m", "autograder", "formgrader", str(c.out)], c.out, dict(os.environ))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            with page_for(browser, request) as page:
                page.goto(server.url("formgrader/manage_assignments"))  # the token's login, for the page's API calls
                page.locator("tr", has_text=A1).first.wait_for(timeout=90_000)
                page.goto(server.url(f"formgrader/submissions/{notebook_id}/"))
                score = page.locator("input.score#layout")
                ready = "() => document.querySelector('input.score#layout')?.placeholder === '0'"  # its model is loaded
                page.wait_for_function(ready, timeout=90_000)
                header = page.locator("blockquote", has_text="Generated file.").first
                assert header.locator("strong").first.inner_text() == "Generated file."
                text = page.evaluate("() => document.body.innerText")
                assert "> **Generated" not in text and "Generated file." in text
                assert not re.findall(r"&(?:#\d+|[a-z]+);", text)  # nothing shown escaped twice, anywhere

                def enter(field, value: str, saved) -> None:
                    """Type into one field and leave it (which saves it), then wait until the gradebook has it:
                    one save at a time, as a person types."""
                    field.fill(value)
                    page.locator("input.score#dtype_range").click()
                    for _ in range(200):
                        if saved(c.hand("cleo", "layout")):
                            return
                        page.wait_for_timeout(100)

                enter(score, "1.5", lambda h: h[1] == 1.5)
                enter(page.locator("input.extra-credit#layout_extra_credit"), "1", lambda h: h[2] == 1.0)
                enter(page.locator("textarea#layout_code-comment"), "Transpose, do not reshape.", lambda h: h[4])
                assert c.hand("cleo", "layout") == (0.0, 1.5, 1.0, False, "Transpose, do not reshape.")

                c.grade("--regrade")

                page.reload()
                page.wait_for_function(ready, timeout=60_000)
                page.wait_for_function("() => document.querySelector('input.score#layout').value === '1.5'",
                                       timeout=30_000)
                assert page.locator("input.extra-credit#layout_extra_credit").input_value() == "1"
                assert page.locator("textarea#layout_code-comment").input_value() == "Transpose, do not reshape."
            browser.close()
    finally:
        server.stop()
    assert c.rows()["cleo"]["score"] == "25.5" and c.rows()["cleo"]["auto_score"] == "23"


def test_a_late_hand_graded_submission_loses_what_nbgraders_rule_takes_from_its_final_points(tmp_path):
    """nbgrader's late rule applies to the score the gradebook holds, hand grades in: with "zero", a late
    submission keeps nothing of a hand grade either."""
    from autograder.grading.autograde import hand_penalty
    from autograder.grading.results import CellResult, HandGrade

    course = Course(course_copy(tmp_path, f'\nc.Autograder.due_dates = {{"{A1}": "2027-01-01 00:00:00 UTC"}}\n'
                                          'c.LateSubmissionPlugin.penalty_method = "zero"\n'))
    r = StudentResult("ada", A1, "graded", 5.0, [CellResult("layout", 0.0, 2.0, "wrong"), CellResult("pad2d", 3.0, 3.0)],
                      submitted_at="2027-01-15 10:30:00 UTC", seconds_late=1246200.0, late_penalty=3.0)
    hand = {"layout": HandGrade(manual=1.5, extra=0.5)}
    assert hand_penalty(course, r, hand) == 5.0 and r.final_score(hand, 5.0) == 0.0
    on_time = StudentResult("bo", A1, "graded", 5.0, r.cells)
    assert hand_penalty(course, on_time, hand) == 0.0 and on_time.final_score(hand) == 5.0
