"""Does the demo (what `make demo` runs) grade its sample class as promised, from a fresh course copy?"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import pytest

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


def test_demo_table_rows(demo_run):
    _, proc = demo_run
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()
            if line.split() and line.split()[0] in ("correct", "untouched", "buggy", "malformed")
            and line.split()[-1] in ("graded", "unreadable")}
    assert rows["correct"][1] == "25" and rows["untouched"][1] == "0"
    assert 0 < float(rows["buggy"][1]) < 25 and rows["malformed"][-1] == "unreadable"
    assert "buggy: correlate2d (-4): correlate2d(" in proc.stdout
    assert "malformed: unreadable:" in proc.stdout and "not valid JSON" in proc.stdout


def test_demo_writes_grades_and_feedback(demo_run):
    course, _ = demo_run
    graded = course / "work" / "demo" / "graded"
    with (graded / "grades.csv").open() as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"correct", "untouched", "buggy", "malformed"}
    for student in rows:
        assert (graded / "feedback" / student / "a1_images_and_convolution" /
                "a1_images_and_convolution.html").is_file()


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
