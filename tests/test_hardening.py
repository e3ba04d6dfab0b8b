"""Hostile and broken submissions through the ``grade`` command: one real notebook per threat, and
the exact score and reason each ends with (killing and resuming a batch: test_resume.py).

The class is a1 (25 points, ten exercises); every submission is the solution with one thing done to
it, so each row says exactly what that thing cost.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, nbgrader_meta, solution_sources, student_version
from autograder.grading.results import StudentResult
from autograder.grading.sandbox import BUBBLEWRAP, isolation

from .support import ROOT, release_nb, source_nb

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")]

A1 = "a1_images_and_convolution"
NB = f"{A1}.ipynb"
SOURCE, RELEASE = source_nb(A1), release_nb(A1)
SOL = solution_sources(SOURCE)
POINTS = dict(graded_cells(SOURCE))
MAX = sum(POINTS.values())
CELL_TIMEOUT = 8


def body(cell: str, prefix: str) -> str:
    """The solution of ``cell`` with ``prefix`` run first inside every function it defines."""
    out = []
    for line in SOL[cell].splitlines():
        out.append(line)
        if line.startswith("def ") and line.rstrip().endswith(":"):
            out += ["    " + p for p in prefix.splitlines()]
    return "\n".join(out)


def nb(answers: dict[str, str] | None = None) -> nbformat.NotebookNode:
    return student_version(RELEASE, SOURCE, answers or {})


def cells_with(notebook, gid: str, test: bool):
    return [c for c in notebook.cells if nbgrader_meta(c).get("grade_id") == gid
            and bool(nbgrader_meta(c).get("solution")) != test]


def add_cell(notebook, code: str, after: str = "layout_code") -> nbformat.NotebookNode:
    i = next(i for i, c in enumerate(notebook.cells) if nbgrader_meta(c).get("grade_id") == after)
    notebook.cells.insert(i + 1, nbformat.v4.new_code_cell(code))
    return notebook


def _wrong(label: str) -> str:
    wa = next(w for w in catalogue.load(A1).WRONG_ANSWERS if w.label == label)
    return wa.apply(SOL[wa.cell])


WRONG_PAD = _wrong("pad_h and pad_w swapped")
WRONG_HWC = _wrong("height and width swapped")


def _edited_test():
    n = nb()
    cells_with(n, "pad2d", test=True)[0].source = "print('looks fine to me')"
    return n


def _deleted_test(wrong: bool):
    n = nb({"layout_code": WRONG_HWC} if wrong else {})
    n.cells = [c for c in n.cells if c not in cells_with(n, "layout", test=True)]
    return n


def _duplicated_test():
    n = nb()
    test = cells_with(n, "grayscale", test=True)[0]
    copy = nbformat.from_dict(json.loads(json.dumps(test)))
    copy.id = "grayscale-copy"
    n.cells.insert(n.cells.index(test), copy)
    return n


def _retyped_test():
    n = nb({"pad2d_code": WRONG_PAD})
    test = cells_with(n, "pad2d", test=True)[0]
    test.cell_type = "markdown"
    test.pop("outputs", None)
    test.pop("execution_count", None)
    return n


def _stripped_metadata():
    n = nb()
    for c in n.cells:
        c.metadata.pop("nbgrader", None)
    return n


def _kernelspec():
    n = nb({"pad2d_code": WRONG_PAD})
    n.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    cells_with(n, "pad2d", test=True)[0].metadata["nbgrader"]["points"] = 100
    return n


def _inserted_cells():
    n = nb({"pad2d_code": SOL["pad2d_code"].replace("np.zeros(", "_canvas(")})
    return add_cell(n, "def _canvas(shape, dtype):\n    return np.zeros(shape, dtype=dtype)\n\nprint('helper ready')")


def _patched(code: str, answers: dict[str, str] | None = None):
    return add_cell(nb(answers or {"layout_code": WRONG_HWC}), code)


def _shadowing(folder: Path) -> None:
    (folder / "numpy.py").write_text("raise SystemExit('shadowed')\n")
    (folder / "autograder").mkdir()
    (folder / "autograder" / "__init__.py").write_text("")
    (folder / "autograder" / "checks.py").write_text("def assert_close(*a, **k):\n    pass\n")


# student -> (notebook, expected score, {exercise: substring of the reason}, substring of the notes)
FULL = {}
CLASS = {
    # 1. resources
    "loop_ignoring_interrupt": (nb({"layout_code": body("layout_code", "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n"
                                                         "    except KeyboardInterrupt:\n        pass")}),
                                MAX - POINTS["layout"], {"layout": "ignored the interrupt, so its kernel was replaced"}, ""),
    "memory_bomb": (nb({"dtype_range_code": body("dtype_range_code", "_hog = [np.empty(1 << 27) for _ in range(200)]")}),
                    MAX - POINTS["dtype_range"], {"dtype_range": "raised MemoryError"}, ""),
    "output_flood": (nb({"grayscale_code": body("grayscale_code", "while True:\n    print('spam' * 2500)")}),
                     MAX - POINTS["grayscale"], {"grayscale": "output cap: the cell printed more than"}, ""),
    # 2. crashes
    "segfault": (nb({"conv_output_size_code": body("conv_output_size_code", "np.lib.stride_tricks.as_strided("
                                                   "np.zeros(1), shape=(1 << 30,), strides=(1 << 20,)).sum()")}),
                 MAX - POINTS["conv_output_size"], {"conv_output_size": "segmentation fault (SIGSEGV)"}, ""),
    "os_exit": (nb({"filters_code": "import os\n" + body("filters_code", "os._exit(1)")}), 0,
                {"layout": "integrity rule — filters_code: line 1: imports os"}, ""),
    "sys_exit": (nb({"pad2d_code": "import sys\n" + body("pad2d_code", "sys.exit(0)")}), 0,
                 {"pad2d": "integrity rule — pad2d_code: line 1: imports sys"}, ""),
    # 3. the notebook
    "edited_test": (_edited_test(), MAX, {}, "test cell pad2d was edited; the instructor's version was run"),
    "deleted_test": (_deleted_test(False), MAX, {}, "test cell layout was deleted; the instructor's version was put back"),
    "deleted_test_wrong": (_deleted_test(True), MAX - POINTS["layout"], {"layout": "hwc_to_chw("}, "test cell layout was deleted"),
    "duplicated_test": (_duplicated_test(), MAX, {}, "test cell grayscale appears twice; the copy was ignored"),
    "retyped_test": (_retyped_test(), MAX - POINTS["pad2d"], {"pad2d": "pad2d("}, ""),
    "stripped_metadata": (_stripped_metadata(), MAX, {}, "solution cell pad2d_code had lost its nbgrader metadata"),
    "kernelspec_and_points": (_kernelspec(), MAX - POINTS["pad2d"], {"pad2d": "pad2d("}, ""),
    "inserted_cells": (_inserted_cells(), MAX, {}, ""),
    # 4. inside the kernel (each with a wrong layout that the patch would have hidden)
    "patch_numpy": (_patched("np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True"), 0,
                    {"grayscale": "changes np.allclose"}, ""),
    "patch_checks": (_patched("import autograder.checks as c\nc.assert_close = lambda *a, **k: None"), 0,
                     {"layout": "imports autograder.checks"}, ""),
    "patch_builtins": (_patched("__builtins__.isinstance = lambda *a: True"), 0, {"layout": "__builtins__"}, ""),
    "patch_by_alias": (_patched("helpers = np.testing\nhelpers.assert_allclose = print"), 0,
                       {"layout": "changes helpers.assert_allclose"}, ""),
    "liar_object": (nb({"layout_code": "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
                                       + body("layout_code", "return Anything()")}), 0,
                    {"layout": "defines __eq__"}, ""),
    "input_transformer": (_patched("get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])"), 0,
                          {"layout": "uses get_ipython"}, ""),
    "detects_grading": (_patched("import os\nGRADING = 'HOME' in os.environ"), 0, {"layout": "imports os"}, ""),
    # 5. outside
    "reads_solutions": (_patched(f"print(open({str(ROOT / 'solutions' / A1 / NB)!r}).read()[:100])"), 0,
                        {"layout": "uses open"}, ""),
    "shell_escape": (_patched(f"!cat {ROOT / 'solutions' / A1 / NB}"), 0, {"layout": "uses get_ipython"}, ""),
    "shadowing_files": (nb({"pad2d_code": WRONG_PAD}), MAX - POINTS["pad2d"], {"pad2d": "pad2d("}, ""),
    # 6. input
    "truncated": ("TRUNCATED", 0, {}, "not valid JSON"),
    "extra_notebook": (nb(), MAX, {}, ""),
    "correct": (nb(), MAX, {}, ""),
}


def write_class(folder: Path) -> dict[str, str]:
    """Write the class; return each student's notebook digest as handed in."""
    text = nbformat.writes(nb())
    for student, (notebook, *_rest) in CLASS.items():
        d = folder / student
        d.mkdir(parents=True)
        if notebook == "TRUNCATED":
            (d / NB).write_text(text[: len(text) // 2])
        else:
            (d / NB).write_text(nbformat.writes(notebook))
    _shadowing(folder / "shadowing_files")
    (folder / "extra_notebook" / "scratch.ipynb").write_text(text)
    return digests(folder)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def grade_cli(subs: Path, out: Path, *extra: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", A1, str(subs), "--out", str(out),
                           "--cell-timeout", str(CELL_TIMEOUT), "--quiet", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800, **kwargs)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    subs = tmp_path_factory.mktemp("hostile-subs")
    out = tmp_path_factory.mktemp("hostile-out")
    before = write_class(subs)
    proc = grade_cli(subs, out, "--workers", "2")
    results = {p.stem: StudentResult.load(p) for p in (out / "results" / A1).glob("*.json")}
    return proc, results, out, subs, before


def test_every_student_has_a_result_and_the_batch_finished(hostile):
    proc, results, out, _, _ = hostile
    assert proc.returncode == 1, proc.stderr[-3000:]  # 1: one submission could not be read
    assert set(results) == set(CLASS)
    assert "bad submission: truncated:" in proc.stderr
    assert "Per student:" in proc.stdout and "  correct: graded, 25/25" in proc.stdout


@pytest.mark.parametrize("student", sorted(CLASS))
def test_exact_outcome(hostile, student):
    _, results, _, _, _ = hostile
    _, score, reasons, note = CLASS[student]
    r = results[student]
    lost = {c.grade_id: c.reason for c in r.lost()}
    assert r.score == score, f"{student}: {r.score} != {score}; lost: {lost}; notes: {r.message}"
    for exercise, reason in reasons.items():
        assert reason in (lost.get(exercise) or ""), f"{student}/{exercise}: {lost.get(exercise)!r}"
    assert note in r.message or note in " ".join(lost.values())
    if student == "memory_bomb":
        assert "memory cap is" in lost["dtype_range"]


def test_every_lost_point_has_a_reason_in_grades_csv_and_feedback(hostile):
    _, results, out, _, _ = hostile
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open())}
    assert set(rows) == set(CLASS)
    for student, r in results.items():
        assert all(c.reason for c in r.lost())
        if r.lost():
            assert rows[student]["notes"], student
        html = (out / "feedback" / student / A1 / f"{A1}.html").read_text()
        assert html
    assert "ignored the interrupt" in rows["loop_ignoring_interrupt"]["notes"]


def test_submissions_are_byte_identical(hostile):
    _, _, _, subs, before = hostile
    assert digests(subs) == before


def test_the_gradebook_is_written_by_the_grader_alone(hostile):
    _, results, out, _, _ = hostile
    db = sqlite3.connect(out / "gradebook.db")
    rows = db.execute("select student.id, count(*) from submitted_assignment join student "
                      "on submitted_assignment.student_id = student.id group by student.id").fetchall()
    assert dict(rows) == {s: 1 for s in CLASS}
    got = dict(db.execute(
        "select submitted_assignment.student_id, sum(coalesce(grade.manual_score, grade.auto_score)) from grade "
        "join submitted_notebook on grade.notebook_id = submitted_notebook.id join submitted_assignment on "
        "submitted_notebook.assignment_id = submitted_assignment.id group by submitted_assignment.student_id"))
    assert got == {s: r.score for s, r in results.items()}


@pytest.mark.skipif(isolation() != BUBBLEWRAP, reason="bubblewrap cannot make namespaces here")
def test_report_says_how_kernels_were_isolated(hostile):
    assert "kernels ran in bubblewrap" in hostile[0].stdout
