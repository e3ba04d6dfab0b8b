"""The grade command on a whole class, through the real grade command (sandboxed kernels, nbgrader's gradebook): exact scores, reasons, bad input.

One class is graded once per session (about two minutes): the correct solution, the untouched
release, every catalogued wrong answer packed into a few submissions, and a row of malformed files.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, solution_sources, student_version
from autograder.grading.results import StudentResult

from .support import ROOT, graded_version, release_nb, run_cells, source_nb

pytestmark = pytest.mark.slow

A1 = "a1_images_and_convolution"
NB = f"{A1}.ipynb"
CAT = catalogue.load(A1)
ROUNDS = catalogue.rounds(CAT.WRONG_ANSWERS, CAT.DEPENDS)
MAX = sum(p for _, p in graded_cells(source_nb(A1)))

# Passes every test in the kernel, but breaks the NumPy-only rule.
TORCH_CORRELATE = """import torch
import torch.nn.functional as F


def correlate2d(image, kernel, stride=1, dilation=1):
    t = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None],
                 stride=stride, dilation=dilation)
    return t[0, 0].numpy()
"""

UNREADABLE = {  # name -> the bytes handed in, made from the correct notebook's text
    "truncated": lambda text: text[: len(text) // 3].encode(),
    "not_utf8": lambda text: text.encode("utf-16"),
    "empty": lambda text: b"",
    "nbformat3": lambda text: json.dumps({**json.loads(text), "nbformat": 3}).encode(),
    "not_a_notebook": lambda text: json.dumps({"hello": "world"}).encode(),
    "bad_schema": lambda text: json.dumps({**json.loads(text), "cells": [{"cell_type": "banana"}]}).encode(),
}
EXPECTED_MESSAGE = {
    "truncated": "not valid JSON",
    "not_utf8": "not UTF-8",
    "empty": "is empty",
    "nbformat3": "notebook format 3",
    "not_a_notebook": "not a Jupyter notebook",
    "bad_schema": "does not follow the notebook format",
}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)


def write(folder: Path, nb_or_text, name: str = NB) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    text = nb_or_text if isinstance(nb_or_text, str) else nbformat.writes(nb_or_text)
    (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    subs = tmp_path_factory.mktemp("submissions")
    out = tmp_path_factory.mktemp("graded")
    source, release = source_nb(A1), release_nb(A1)
    solutions = solution_sources(source)
    correct_text = nbformat.writes(student_version(release, source))
    write(subs / "correct", correct_text)
    write(subs / "untouched" / A1, release)  # nbgrader's nested layout: <student>/<assignment>/
    write(subs / "torch_user", student_version(release, source, {"correlate2d_code": TORCH_CORRELATE}))
    for i, group in enumerate(ROUNDS, 1):
        answers = {wa.cell: wa.apply(solutions[wa.cell]) for wa in group}
        write(subs / f"round{i:02d}", student_version(release, source, answers))
    for name, corrupt in UNREADABLE.items():
        (subs / name).mkdir()
        (subs / name / NB).write_bytes(corrupt(correct_text))
    write(subs / "renamed", correct_text, name=f"{A1} (1).ipynb")
    (subs / "notes.txt").write_text("a stray file at the top level")
    (subs / "bad name!").mkdir()
    proc = cli("grade", A1, str(subs), "--out", str(out), "--quiet", "--workers", "2")
    results = {p.stem: StudentResult.load(p) for p in (out / "results" / A1).glob("*.json")}
    return dict(subs=subs, out=out, proc=proc, results=results)


def test_exit_status_and_bad_input_lines(graded_class):
    """Does grade exit 1 when some notebooks are unreadable, listing each on its own line?"""
    proc = graded_class["proc"]
    assert proc.returncode == 1, proc.stderr[-3000:]
    bad = [line for line in proc.stderr.splitlines() if line.startswith("bad submission:")]
    for name in [*UNREADABLE, "renamed", "notes.txt", "bad name!"]:
        assert any(name in line for line in bad), (name, bad)
    assert len(bad) == len(UNREADABLE) + 3


def test_correct_submission_gets_full_marks(graded_class):
    r = graded_class["results"]["correct"]
    assert (r.status, r.score, r.max_score) == ("graded", MAX, MAX)
    assert not r.lost() and r.notes() == ""


def test_untouched_release_gets_zero_in_every_cell(graded_class):
    """Does the blank release (in nbgrader's nested layout) score 0, each cell saying why?"""
    r = graded_class["results"]["untouched"]
    assert (r.status, r.score) == ("graded", 0)
    assert len(r.lost()) == len(r.cells) == len(graded_cells(source_nb(A1)))
    assert all("not implemented yet" in c.reason for c in r.cells)


def test_torch_in_a_numpy_exercise_scores_zero_with_the_reason(graded_class):
    """Does code that passes every test through torch lose the exercise (and those calling it), saying why?"""
    r = graded_class["results"]["torch_user"]
    lost = {c.grade_id: c for c in r.lost()}
    assert set(lost) == {"correlate2d", "convolve2d", "sobel"}
    assert lost["correlate2d"].reason.startswith("correlate2d: NumPy only — correlate2d_code: line 1: imports torch")
    assert "uses correlate2d" in lost["sobel"].reason
    assert r.score == MAX - sum(c.max_points for c in lost.values())
    html = (graded_class["out"] / "feedback" / "torch_user" / A1 / f"{A1}.html").read_text()
    assert "NumPy only" in html and f"(Score: {r.score:.1f} / {MAX:.1f})" in html


@pytest.mark.parametrize("index", range(len(ROUNDS)), ids=lambda i: f"round{i + 1:02d}")
def test_each_wrong_answer_loses_points_in_real_grading(graded_class, index):
    """Does nbgrader take the points of every exercise with a wrong answer — and only those, and
    exactly the cells the in-process run fails — with the function named in the reason?"""
    group = ROUNDS[index]
    r = graded_class["results"][f"round{index + 1:02d}"]
    assert r.status == "graded"
    lost = {c.grade_id: c for c in r.lost()}
    for wa in group:
        assert wa.exercise in lost, f"{wa.id} kept its points under nbgrader"
        assert lost[wa.exercise].points == 0
        assert any(n in lost[wa.exercise].reason for n in wa.names), lost[wa.exercise].reason
    solutions = solution_sources(source_nb(A1))
    verdicts = run_cells(graded_version(A1, {wa.cell: wa.apply(solutions[wa.cell]) for wa in group}))
    assert set(lost) == {gid for gid, v in verdicts.items() if not v.passed}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_notebook_gets_an_error_row(graded_class, name):
    """Does each kind of malformed notebook get status 'unreadable', 0 points and a one-line reason?"""
    r = graded_class["results"][name]
    assert (r.status, r.score) == ("unreadable", 0)
    assert EXPECTED_MESSAGE[name] in r.message and "\n" not in r.message
    html = graded_class["out"] / "feedback" / name / A1 / f"{A1}.html"
    assert EXPECTED_MESSAGE[name] in html.read_text()


def test_renamed_notebook_is_reported_missing(graded_class):
    r = graded_class["results"]["renamed"]
    assert (r.status, r.score) == ("missing", 0)
    assert f"no {NB}" in r.message and f"{A1} (1).ipynb" in r.message


def test_grades_csv(graded_class):
    """Does grades.csv hold one row per student with per-exercise points and the reasons?"""
    with (graded_class["out"] / "grades.csv").open() as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    exercises = [gid for gid, _ in graded_cells(source_nb(A1))]
    assert set(rows) == set(graded_class["results"])
    row = rows["correct"]
    assert list(row)[:5] == ["student", "assignment", "status", "score", "max_score"]
    assert list(row)[5:-1] == exercises and list(row)[-1] == "notes"
    assert (row["assignment"], row["score"], row["max_score"]) == (A1, f"{MAX:g}", f"{MAX:g}")
    assert rows["untouched"]["score"] == "0" and "not implemented yet" in rows["untouched"]["notes"]
    assert rows["truncated"]["status"] == "unreadable" and "not valid JSON" in rows["truncated"]["notes"]
    assert [rows["correct"][e] for e in exercises] == [f"{p:g}" for _, p in graded_cells(source_nb(A1))]


def test_feedback_html_for_every_graded_student(graded_class):
    out = graded_class["out"]
    for student in ["correct", "untouched", "torch_user", *(f"round{i:02d}" for i in range(1, len(ROUNDS) + 1))]:
        r = graded_class["results"][student]
        html = (out / "feedback" / student / A1 / f"{A1}.html").read_text()
        assert f"(Score: {r.score:.1f} / {MAX:.1f})" in html
    assert "not implemented yet" in (out / "feedback" / "untouched" / A1 / f"{A1}.html").read_text()


def test_table_printed(graded_class):
    stdout = graded_class["proc"].stdout
    assert "Why points were lost:" in stdout
    line = next(l for l in stdout.splitlines() if l.startswith("correct "))
    assert f"{MAX:g}" in line and line.rstrip().endswith("graded")


def test_bad_resubmission_keeps_the_recorded_grade(graded_class, tmp_path):
    """Does a malformed resubmission leave an earlier grade in place, and is the rest untouched?"""
    out = graded_class["out"]
    before = (out / "grades.csv").read_text()
    again = tmp_path / "again"
    write(again / "correct", "{ not json")
    proc = cli("grade", A1, str(again), "--out", str(out), "--quiet")
    assert proc.returncode == 1
    assert "earlier grade kept" in proc.stderr
    r = StudentResult.load(out / "results" / A1 / "correct.json")
    assert (r.status, r.score) == ("graded", MAX) and "earlier grade kept" in r.message
    after = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    old = {row["student"]: row for row in csv.DictReader(before.splitlines())}
    assert after["correct"]["score"] == old["correct"]["score"]
    assert {k: v for k, v in after.items() if k != "correct"} == {k: v for k, v in old.items() if k != "correct"}


@pytest.mark.parametrize("args, message", [
    (["grade", "a9_nope", "{subs}", "--out", "{out}"], "unknown assignment 'a9_nope'"),
    (["grade", A1, "/nonexistent/submissions", "--out", "{out}"], "does not exist"),
    (["grade", A1, "{subs}/notes.txt", "--out", "{out}"], "is a file"),
    (["grade", A1, "{subs}", "--out", "{subs}/notes.txt"], "is a file"),
    (["grade", A1, "{subs}", "--out", "{subs}/inside"], "inside"),
    (["grade", A1, "{empty}", "--out", "{out}"], "no student folders"),
])
def test_bad_usage_is_one_line_and_changes_nothing(graded_class, tmp_path, args, message):
    """Do wrong paths and unknown assignments get one clear line, exit 2, and leave grades alone?"""
    out = graded_class["out"]
    before = (out / "grades.csv").read_text()
    (tmp_path / "empty").mkdir()
    fmt = dict(subs=graded_class["subs"], out=out, empty=tmp_path / "empty")
    proc = cli(*[a.format(**fmt) for a in args])
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert (out / "grades.csv").read_text() == before
    assert not (graded_class["subs"] / "inside").exists()


def test_submissions_are_not_modified(graded_class):
    """Is every handed-in file byte-identical after grading (grading works on copies)?"""
    subs = graded_class["subs"]
    correct = nbformat.writes(student_version(release_nb(A1), source_nb(A1)))
    assert (subs / "correct" / NB).read_text(encoding="utf-8") == correct
    assert not any(p.name == "timestamp.txt" for p in subs.rglob("*"))
