"""The grader killed with SIGKILL mid-batch and run again (no grade lost or duplicated, submissions
untouched), and the same submission graded twice (same result, same autograded notebook).

Separate from test_class_grading.py so that ``--dist loadscope`` runs the two modules side by side.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import nbformat
import pytest

from autograder.grading.results import StudentResult

from .classes import Assignment
from .support import ROOT, autograder, autograder_command, autograder_env
from .test_class_grading import digests

A1 = "a1_images_and_convolution"
_A = Assignment(A1)
NB, MAX, POINTS = _A.nb_file, _A.max, _A.points
WRONG_PAD = _A.wrong("pad_h and pad_w swapped")[1]
nb = _A.nb
CELL_TIMEOUT = 8


def grade_cli(subs, out, *extra: str) -> subprocess.CompletedProcess:
    return autograder("grade", A1, str(subs), "--out", str(out), "--cell-timeout", str(CELL_TIMEOUT), "--quiet",
                      *extra, timeout=1800)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")]

RESUME_CLASS = 6


def test_killed_batch_resumes_without_losing_or_duplicating_a_grade(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    for i in range(RESUME_CLASS):
        answers = {"pad2d_code": WRONG_PAD} if i % 2 else {}
        (subs / f"s{i}").mkdir(parents=True)
        (subs / f"s{i}" / NB).write_text(nbformat.writes(nb(answers)))
    before = digests(subs)
    cmd = autograder_command("grade", A1, str(subs), "--out", str(out), "--quiet",
                             "--cell-timeout", str(CELL_TIMEOUT))  # the same settings as the second run, or nothing is kept
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=autograder_env())
    results_dir = out / "results" / A1
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(results_dir.glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.stem for p in results_dir.glob("*.json")}
    assert 2 <= len(done_before) < RESUME_CLASS, done_before
    statuses = {p.stem: json.loads(p.read_text())["status"] for p in results_dir.glob("*.json")}
    assert digests(subs) == before

    again = grade_cli(subs, out)
    assert again.returncode == 0, again.stderr[-2000:]
    for s in done_before:
        assert f"  {s}: graded" in again.stdout and "kept from an earlier run" in again.stdout, (
            statuses, again.stdout[-1500:])
    resumed = {p.stem: StudentResult.load(p) for p in results_dir.glob("*.json")}
    assert {s: r.score for s, r in resumed.items()} == {
        f"s{i}": MAX - (POINTS["pad2d"] if i % 2 else 0) for i in range(RESUME_CLASS)}
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert sorted(r["student"] for r in rows) == [f"s{i}" for i in range(RESUME_CLASS)]
    db = sqlite3.connect(out / "gradebook.db")
    assert db.execute("select count(*) from submitted_assignment").fetchone()[0] == RESUME_CLASS
    assert digests(subs) == before


def test_the_same_submission_twice_gives_the_same_grade_and_notebook(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "amy").mkdir(parents=True)
    (subs / "amy" / NB).write_text(nbformat.writes(nb({"pad2d_code": WRONG_PAD})))
    runs = []
    for _ in range(2):
        proc = grade_cli(subs, out, "--regrade")
        assert proc.returncode == 0, proc.stderr[-2000:]
        result = json.loads((out / "results" / A1 / "amy.json").read_text())
        result.pop("seconds")
        result.pop("cell_seconds")
        notebook = (out / "nbgrader" / "autograded" / "amy" / A1 / NB).read_text()
        runs.append((result, notebook))
    assert runs[0] == runs[1]
