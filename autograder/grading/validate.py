"""`python -m autograder validate NOTEBOOK`: what a student's Validate button does, as a command.

Runs the notebook top to bottom in a fresh kernel and reports, per test cell, passed or failed with
the check's message; warns about test cells that were edited (graders run their own copy anyway).
Only the visible tests run here: the hidden ones exist only in the instructor's source.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from ..course import UsageError, find_course
from . import integrity, numpy_only
from .nbgrader_cli import jupyter_home
from .notebooks import Unreadable, nbgrader_meta, read_submission
from .results import failure_reason


def validate(path: Path, timeout: float = 120.0) -> int:
    """Print a pass/fail line per test cell; return 0 when all pass, 1 otherwise, 2 if unreadable."""
    from nbgrader.utils import compute_checksum, determine_grade

    path = path.expanduser()
    try:
        nb = read_submission(path)
    except Unreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    charged = _numpy_only_findings(path, nb)
    door = integrity.check_notebook(nb, nb)  # cells with nbgrader ids other than solutions are the instructor's
    edited = [nbgrader_meta(c)["grade_id"] for c in nb.cells
              if nbgrader_meta(c).get("locked") and "checksum" in nbgrader_meta(c)
              and compute_checksum(c) != nbgrader_meta(c)["checksum"]]
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as home:
        saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "MPLBACKEND")}
        os.environ.update({k: v for k, v in jupyter_home(Path(home)).items() if k in saved})
        try:
            client = NotebookClient(nb, timeout=int(timeout), kernel_name="python3", allow_errors=True,
                                    resources={"metadata": {"path": str(path.resolve().parent)}})
            client.execute()
        except (CellTimeoutError, DeadKernelError) as exc:
            print(f"note: execution stopped early: {type(exc).__name__}", file=sys.stderr)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    failed = 0
    total = got = 0.0
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if not meta.get("grade") or meta.get("solution") or cell.cell_type != "code":
            continue
        score, max_points = determine_grade(cell)
        total += max_points
        got += score or 0
        if score is not None and score >= max_points:
            print(f"  passed  {meta['grade_id']} ({max_points:g} pt)")
        else:
            failed += 1
            reason = failure_reason(cell, timeout).strip().splitlines()
            print(f"  FAILED  {meta['grade_id']} ({max_points:g} pt): {reason[0] if reason else ''}")
            for line in reason[1:6]:
                print(f"          {line}")
    for gid, reason in charged.items():
        failed += 1
        print(f"  FAILED  {numpy_only.explain(gid, reason)}")
    if door:
        failed += 1
        print(f"  FAILED  every test: {integrity.explain(door)}")
    for gid in edited:
        print(f"  note: the locked cell {gid!r} was edited; graders use the original, so your edit is ignored")
    print(f"\n{path.name}: visible tests {'all passed' if not failed else f'failed in {failed} cell(s)'}"
          f" ({got:g} of {total:g} points from visible tests; hidden tests run at grading).")
    return 1 if failed else 0


def _numpy_only_findings(path: Path, nb) -> dict[str, str]:
    """The NumPy-only verdicts the grader will give, when the notebook belongs to a course assignment."""
    import nbformat

    try:
        course = find_course()
    except UsageError:
        return {}
    for assignment in course.assignment_ids():
        if path.stem in course.notebooks(assignment) and numpy_only.applies_to(assignment):
            source = nbformat.read(course.solutions / assignment / f"{path.stem}.ipynb", as_version=4)
            return numpy_only.check_notebook(nb, source)
    return {}
