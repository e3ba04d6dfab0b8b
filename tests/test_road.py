"""One grading road, without grading anyone: every nbgrader config the course writes routes Autograde
and feedback to the judge, the steps refuse what the judge did not grade, formgrader refuses a
class whose config does not route, and Release Feedback hands each page to its own student.

(The road itself — nbgrader autograde in a class folder, formgrader's buttons on hostile
submissions, feedback fetched through the exchange — is driven in tests/test_browser.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from traitlets.config.loader import PyFileConfigLoader

from autograder.course import Course
from autograder.grading import feedback, formgrader, road

from .support import ROOT, autograder

A1 = "a1_images_and_convolution"


def graded_nb():
    nb = nbformat.v4.new_notebook()
    nb.cells.append(feedback.report_cell(A1, [("pad2d", 3.0, 3.0, None)], []))
    nb.cells.append(nbformat.v4.new_markdown_cell("The instructor's math: $E = mc^2$"))
    return nb


def test_the_course_root_config_routes_nbgrader_to_the_judge():
    """`nbgrader autograde` typed at the repository root is the judge's too (no stock Execute)."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    for key, want in road.ROUTE.items():
        section, name = key.split(".")
        assert config[section][name] == want, key
    assert Path(config.Judge.out) == ROOT / "work" / "graded" and Path(config.Judge.course) == ROOT


def test_a_class_config_routes_and_formgrader_refuses_one_that_does_not(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    formgrader.prepare(out, Course(ROOT), f"sqlite:///{out / 'gradebook.db'}", A1, {},
                       settings={"cell_timeout": 7.0, "submission_timeout": 100.0})
    assert formgrader.routed(out)
    assert (out / "nbgrader" / "nbgrader_config.py").read_text() == (out / "nbgrader_config.py").read_text()
    assert road.load_settings(out, A1)["cell_timeout"] == 7.0
    config = out / "nbgrader_config.py"
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if "Autograde.sanitize_preprocessors" not in line))  # an older class
    assert not formgrader.routed(out)
    proc = autograder("formgrader", str(out), "--no-browser", timeout=120)
    assert proc.returncode == 2 and "does not route nbgrader's Autograde" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_steps_refuse_a_notebook_the_judge_did_not_grade():
    student = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(road.NotJudged):
        road.Judged().preprocess(student, {})
    forged = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hi')")])
    forged.cells[0].id = road.REPORT_ID  # a code cell under the report's id is not the report
    with pytest.raises(road.NotJudged):
        road.FeedbackPage().from_notebook_node(forged)
    nb = graded_nb()
    assert road.Judged().preprocess(nb, {})[0] is nb
    page, resources = road.FeedbackPage().from_notebook_node(nb)
    assert page == feedback.page(nb) and resources["output_extension"] == ".html"


def test_released_pages_find_mathjax_on_the_students_jupyter_server():
    page = feedback.page(graded_nb())
    assert feedback.MATHJAX_SERVER in page and feedback.MATHJAX_URL in page  # server first, the copy beside
    assert "cdnjs.cloudflare.com/ajax/libs/mathjax" not in page


def test_release_feedback_hands_each_page_to_its_student_alone(tmp_path):
    """Through nbgrader's own command in a class folder: a page beside a submission's exchange secret
    is released under that secret's hash (which only that student's fetch computes); a page of a
    submission that never went through the exchange is named and left out, not a crash."""
    from nbgrader.utils import notebook_hash

    out = tmp_path / "out"
    out.mkdir()
    formgrader.prepare(out, Course(ROOT), f"sqlite:///{out / 'gradebook.db'}", A1, {})
    pages = {}
    for student, secret in (("ana", "secret-of-ana"), ("ben", None)):
        folder = out / "feedback" / student / A1
        folder.mkdir(parents=True)
        pages[student] = f"<html>{student}'s page</html>"
        (folder / f"{A1}.html").write_text(pages[student])
        if secret:
            (folder / "timestamp.txt").write_text("2026-01-01 10:00:00.000000 UTC")
            (folder / "submission_secret.txt").write_text(secret)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "release_feedback", A1], cwd=out, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "Not releasing ben's feedback" in proc.stdout
    released = sorted((out / "exchange" / formgrader.COURSE_ID / "feedback").glob("*.html"))
    assert [p.name for p in released] == [notebook_hash(secret="secret-of-ana", notebook_id=A1) + ".html"]
    assert released[0].read_text() == pages["ana"]


def test_feedback_carries_the_hand_grading(tmp_path):
    """A score given by hand and a grader's comment (formgrader's Manual Grading) reach the page
    Generate Feedback makes, under the report, the comment shown as typed."""
    from nbgrader.api import Gradebook

    from autograder.grading import gradebook

    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    gradebook.stamp(db)  # the tables and nbgrader's stamp, in this process (as grade makes them)
    with Gradebook(db) as gb:
        gb.update_or_create_assignment(A1)
        gb.add_notebook(A1, A1)
        gb.add_grade_cell("pad2d", A1, A1, max_score=3, cell_type="code")
        gb.add_solution_cell("pad2d_code", A1, A1)
        gb.add_student("ana")
        gb.add_submission(A1, "ana")
        sub = gb.find_submission_notebook(A1, A1, "ana")
        sub.grades[0].auto_score = 1.0
        sub.grades[0].manual_score = 2.5
        sub.comments[0].manual_comment = "Nice $x$ <b>work</b>\n- but check the edges"
        gb.db.commit()
    resources = {"nbgrader": {"db_url": db, "assignment": A1, "notebook": A1, "student": "ana"}}
    page, _ = road.FeedbackPage().from_notebook_node(graded_nb(), resources)
    assert "Hand grading" in page and "Score after hand grading: 2.5 / 3" in page
    assert "<code>pad2d_code</code>" in page and "&amp;#" not in page  # the cell's name as the report shows it
    assert "given by hand (the grader" in page and "tests gave 1)" in page
    assert "<b>work</b>" not in page and "&amp;lt;b&amp;gt;work" not in page  # escaped once, shown as typed
    assert "&lt;b&gt;work&lt;/b&gt;" in page
    resources["nbgrader"]["student"] = "nobody"
    assert "Hand grading" not in road.FeedbackPage().from_notebook_node(graded_nb(), resources)[0]


def test_the_hubs_release_records_the_assignment_for_autograde(tmp_path):
    """The hub's instructor config (its course folder's): `nbgrader release_assignment` of the course's
    own release records it in the gradebook first — the exercises and points `grade` records —, so that
    formgrader's Autograde finds the assignment on a course that never ran nbgrader's generate_assignment."""
    from nbgrader.api import Gradebook

    from autograder import hub
    from autograder.grading.notebooks import graded_cells

    home, exchange = tmp_path / "home", tmp_path / "exchange"
    course = home / "convnets"
    (course / "grades").mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(hub.instructor_config(Course(ROOT), exchange))
    assert formgrader.routed(course)
    env = {**os.environ, "HOME": str(home), "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "release_assignment", A1], cwd=course, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0 and "Recorded" in proc.stdout, proc.stdout[-2000:]
    assert (exchange / "convnets" / "outbound" / A1 / f"{A1}.ipynb").is_file()
    with Gradebook(f"sqlite:///{course / 'grades' / 'gradebook.db'}") as gb:
        cells = {(c.name, c.max_score) for nb in gb.find_assignment(A1).notebooks for c in nb.grade_cells}
    want = graded_cells(nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4))
    assert cells == {(gid, float(pts)) for gid, pts in want}
