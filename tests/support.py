"""Shared helpers for the tests: the course, its notebooks, and a fast stand-in for nbgrader's verdicts."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from autograder.course import Course
from autograder.grading.notebooks import nbgrader_meta, solution_sources

ROOT = Path(__file__).resolve().parent.parent
COURSE = Course(ROOT)
SECRET = os.environ.get("AUTOGRADER_SECRET", "a-course-secret-for-the-tests-only")  # set by conftest.py


def autograder_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "autograder", *args]


def autograder_env() -> dict[str, str]:
    return {**os.environ, "AUTOGRADER_SECRET": SECRET}


def autograder(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m autograder ARGS`` from the checkout, with the tests' course secret."""
    return subprocess.run(autograder_command(*args), cwd=ROOT, env=autograder_env(), capture_output=True,
                          text=True, timeout=timeout)


def course_copy(folder: Path, extra_config: str = "") -> Path:
    """A course of its own in ``folder``: the checkout's solutions/ and assignments/ (linked), its
    nbgrader_config.py with ``extra_config`` appended, and a work/ of its own."""
    for name in ("solutions", "assignments"):
        (folder / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "nbgrader_config.py", folder / "nbgrader_config.py")
    if extra_config:
        with (folder / "nbgrader_config.py").open("a") as fh:
            fh.write(extra_config)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_jupyter(base: str, token: str, proc: subprocess.Popen, seconds: float) -> bool:
    """True once the Jupyter server at ``base`` answers; False if ``proc`` died or time ran out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            return True
        except OSError:
            if proc.poll() is not None:
                return False
            time.sleep(0.3)
    return False


@lru_cache(maxsize=None)
def _read(path: Path) -> NotebookNode:
    return nbformat.read(path, as_version=4)


def source_nb(assignment: str) -> NotebookNode:
    (name,) = COURSE.notebooks(assignment)
    return nbformat.from_dict(_read(COURSE.solutions / assignment / f"{name}.ipynb"))


def release_nb(assignment: str) -> NotebookNode:
    (name,) = COURSE.notebooks(assignment)
    return nbformat.from_dict(_read(COURSE.assignments / assignment / f"{name}.ipynb"))


def released_stubs(assignment: str) -> dict[str, str]:
    """grade_id -> the code a student finds in each solution cell of the release."""
    return {nbgrader_meta(c)["grade_id"]: c.source for c in release_nb(assignment).cells
            if nbgrader_meta(c).get("solution")}


def graded_version(assignment: str, answers: dict[str, str] | None = None) -> NotebookNode:
    """The instructor's notebook (hidden tests included) with the solution cells replaced by
    ``answers`` where given and by the solution elsewhere: what nbgrader's autograde executes."""
    nb = source_nb(assignment)
    solutions = solution_sources(nb)
    answers = answers or {}
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution"):
            cell.source = answers.get(gid, solutions[gid])
    return nb


@dataclass
class Verdict:
    passed: bool
    error: str | None  # the exception's message (or stderr text) when failed


def run_cells(nb: NotebookNode, only: str | None = None) -> dict[str, Verdict]:
    """Execute the code cells in order, in one fresh namespace in this process, and judge each test
    cell: failed if it raised, passed otherwise (what the notebook's own test cells say; the
    grader's judge says the same, from outside the kernel). ``only``: run that test cell alone.

    Figure cells (grade_id ``*_show``) are skipped: they only draw, and test cells never use them.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__main__"}
    verdicts: dict[str, Verdict] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = nbgrader_meta(cell)
        if str(meta.get("grade_id", "")).endswith("_show"):
            continue
        graded = bool(meta.get("grade")) and not meta.get("solution")
        if graded and only is not None and meta.get("grade_id") != only:
            continue
        out, err = io.StringIO(), io.StringIO()
        error = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                exec(compile(cell.source, f"<cell {meta.get('grade_id', '?')}>", "exec"), namespace)
            except Exception as exc:  # the cell's failure is the verdict
                error = f"{type(exc).__name__}: {exc}"
                if not graded:
                    error += "\n" + traceback.format_exc()
        plt.close("all")
        if graded:
            verdicts[meta["grade_id"]] = Verdict(error is None, error)
    return verdicts
