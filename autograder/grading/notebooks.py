"""Reading submitted notebooks defensively, and writing student versions of the solutions."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024

_SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


class Unreadable(Exception):
    """A submitted notebook that cannot be graded; the message is the one-line reason."""


def read_submission(path: Path) -> NotebookNode:
    """Parse and validate a submitted notebook, or raise Unreadable saying what is wrong with it."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Unreadable(f"cannot open {path.name}: {exc.strerror}") from None
    if size == 0:
        raise Unreadable(f"{path.name} is empty (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise Unreadable(f"{path.name} is {size / 2**20:.0f} MiB; clear the outputs and resubmit "
                         f"(limit {MAX_NOTEBOOK_BYTES // 2**20} MiB)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read {path.name}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"{path.name} is not UTF-8 text (bad byte at offset {exc.start}); "
                         "it is not a notebook saved by Jupyter") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Unreadable(f"{path.name} is not valid JSON ({exc.msg} at line {exc.lineno}, column "
                         f"{exc.colno}); the file is truncated or was edited outside Jupyter") from None
    except (RecursionError, ValueError) as exc:
        raise Unreadable(f"{path.name} is JSON nested too deeply or too large to read ({type(exc).__name__}); "
                         "it is not a notebook saved by Jupyter") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise Unreadable(f"{path.name} is JSON but not a Jupyter notebook (no list of cells)")
    major = data.get("nbformat")
    if major != 4:
        raise Unreadable(f"{path.name} uses notebook format {major!r}; open it in Jupyter and save "
                         "it again (format 4)")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise Unreadable(f"{path.name} does not follow the notebook format: "
                         f"{str(exc.message).splitlines()[0]}") from None
    except Exception as exc:  # nbformat raises assorted errors on odd input (RecursionError included)
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise Unreadable(f"{path.name} cannot be read as a notebook: {text}") from None
    return nb


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def graded_cells(nb: NotebookNode) -> list[tuple[str, float]]:
    """(grade_id, points) of the autograded test cells, in notebook order."""
    out = []
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if meta.get("grade") and not meta.get("solution") and cell.cell_type == "code":
            out.append((meta["grade_id"], float(meta.get("points", 0))))
    return out


def strip_solution_markers(source: str) -> str:
    """The solution code as a student would have written it: the BEGIN/END SOLUTION lines removed."""
    return _SOLUTION_MARKER.sub("", source)


def solution_sources(source_nb: NotebookNode) -> dict[str, str]:
    """grade_id -> solution code without markers, for every solution cell of a source notebook."""
    return {nbgrader_meta(c)["grade_id"]: strip_solution_markers(c.source)
            for c in source_nb.cells if nbgrader_meta(c).get("solution")}


def student_version(release_nb: NotebookNode, source_nb: NotebookNode,
                    answers: dict[str, str] | None = None) -> NotebookNode:
    """The released notebook with its solution cells filled in, as a student would submit it.

    Every solution cell gets the instructor's solution, except those named in ``answers``
    (grade_id -> code), which get that code instead.
    """
    solutions = solution_sources(source_nb)
    answers = answers or {}
    unknown = set(answers) - set(solutions)
    if unknown:
        raise KeyError(f"no solution cell with grade_id {sorted(unknown)}")
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if nbgrader_meta(cell).get("solution"):
            cell.source = answers.get(gid, solutions[gid])
    return nb
