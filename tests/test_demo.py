"""Does the demo (what `make demo` runs) grade its sample class as promised, from a fresh course copy?"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

from autograder import catalogue

from .support import COURSE, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(COURSE.solutions, course / "solutions")
    proc = subprocess.run([sys.executable, "-m", "autograder", "--course", str(course), "demo", "--quiet"],
                          cwd=course, capture_output=True, text=True, timeout=1800)
    return course, proc


def test_demo_exits_zero_and_says_so(demo_run):
    _, proc = demo_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "demo: every sample submission got the grade it should" in proc.stdout


def sections(stdout: str) -> dict[str, str]:
    """The demo's output per assignment (each starts with '== <assignment>: ...')."""
    parts = stdout.split("\n== ")[1:]
    return {p.split(":", 1)[0]: p for p in parts}


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_demo_table_rows(demo_run, assignment):
    _, proc = demo_run
    text = sections(proc.stdout)[assignment]
    full = next(line.split()[1] for line in text.splitlines() if line.startswith("(max)"))
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.split() and line.split()[0] in ("correct", "untouched", "buggy", "malformed")
            and line.split()[-1] in ("graded", "unreadable")}
    assert rows["correct"][1] == full and rows["untouched"][1] == "0"
    assert 0 < float(rows["buggy"][1]) < float(full) and rows["malformed"][-1] == "unreadable"
    bug = next(wa for wa in catalogue.load(assignment).WRONG_ANSWERS
               if wa.id == catalogue.load(assignment).DEMO_BUG)
    assert f"buggy: {bug.exercise} (-" in text
    assert "malformed: unreadable:" in text and "not valid JSON" in text


def test_demo_writes_grades_and_feedback(demo_run):
    course, _ = demo_run
    graded = course / "work" / "demo" / "graded"
    with (graded / "grades.csv").open() as fh:
        rows = [(r["student"], r["assignment"]) for r in csv.DictReader(fh)]
    students = ("correct", "untouched", "buggy", "malformed")
    assert sorted(rows) == sorted((s, a) for s in students for a in COURSE.assignment_ids())
    for student, a in rows:
        for name in COURSE.notebooks(a):
            assert (graded / "feedback" / student / a / f"{name}.html").is_file()


def test_demo_release_equals_the_committed_assignments(demo_run):
    course, _ = demo_run
    for nb in (course / "assignments").rglob("*.ipynb"):
        committed = COURSE.assignments / nb.relative_to(course / "assignments")
        assert json.loads(nb.read_text()) == json.loads(committed.read_text())


def test_demo_refuses_to_wipe_a_foreign_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "autograder", "demo", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "not empty and was not made by the demo" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
