"""The notebook that is actually graded: the instructor's, with the student's answers put in.

This module is the one place that decides what each cell of a submission is. Whatever was done
to a submission — test cells edited, deleted, duplicated or re-typed, nbgrader metadata stripped,
provided code changed, kernelspec swapped — the notebook graded is built from the instructor's
source: every markdown, provided, figure and test cell (hidden tests included) is the
instructor's; each solution cell takes the student's code for that exercise; cells the student
added are kept, after the instructor cell they followed. A solution cell whose metadata was
stripped is found by the names it defines. Each intervention is reported in a one-line note.

The cells a release adds around the source — nbgrader's header and footer (``frame``: the
"Generated file / How this notebook is graded" note) — are the instructor's too: they are put back
from the course's own header and footer notebooks, and the student's copy of them is dropped like
any copy of an instructor's cell. A student's text is never taken for the instructor's: only a cell
equal to one of the instructor's is dropped, and the instructor's version is the one shown.

Every cell of the result carries its role in ``metadata.autograder.role`` (:func:`role`):
``answer`` (with its ``exercise``), ``added``, ``test`` (with its ``exercise``), ``figure``
(an instructor cell that only draws: ``*_show``) or ``instructor``. The kernel, the restrictions,
Validate and the grade all read roles from here.
"""

from __future__ import annotations

import ast
import copy
import re

import nbformat
from nbformat.notebooknode import NotebookNode

from .notebooks import nbgrader_meta

_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?", re.MULTILINE | re.DOTALL)
STUB = "raise NotImplementedError()"


ANSWER, ADDED, TEST, FIGURE, INSTRUCTOR = "answer", "added", "test", "figure", "instructor"


def visible(source: str) -> str:
    """A test cell as the student sees it: without the hidden tests."""
    return _HIDDEN.sub("", source).strip()


def split_hidden(source: str) -> tuple[str, str]:
    """(the visible part, the hidden tests) of a test cell's source."""
    hidden = "\n".join(m.group(0) for m in _HIDDEN.finditer(source))
    hidden = re.sub(r"^[ \t]*### (BEGIN|END) HIDDEN TESTS.*$", "", hidden, flags=re.MULTILINE)
    return _HIDDEN.sub("", source), hidden


def role(cell: NotebookNode) -> str:
    """The role :func:`assemble` gave a cell."""
    return cell.get("metadata", {}).get("autograder", {}).get("role", INSTRUCTOR)


def exercise_of(cell: NotebookNode) -> str | None:
    """The exercise an answer or test cell belongs to."""
    return cell.get("metadata", {}).get("autograder", {}).get("exercise")


def answer_exercise(solution_id: str) -> str:
    """The exercise a solution cell answers: ``pad2d_code`` answers ``pad2d``."""
    return solution_id[: -len("_code")] if solution_id.endswith("_code") else solution_id


def _mark(cell: NotebookNode, kind: str, exercise: str | None = None) -> None:
    meta = cell.setdefault("metadata", {}).setdefault("autograder", {})
    meta["role"] = kind
    if exercise:
        meta["exercise"] = exercise


def defined_names(code: str) -> set[str]:
    """Top-level functions, classes and assigned names of ``code`` (empty if it does not parse)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _role(cell: NotebookNode) -> str:
    meta = nbgrader_meta(cell)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade") or meta.get("locked") or meta.get("grade_id"):
        return "instructor"
    return "student"


def assemble(source: NotebookNode, submitted: NotebookNode,
             frame: dict | None = None) -> tuple[NotebookNode, list[str]]:
    """The notebook to run, and the notes saying what was restored or ignored. ``frame``: the
    release's header and footer cells (:func:`.release.frame`), when ``source`` is the instructor's
    source rather than the release."""
    notes: list[str] = []
    header = [_instructor_cell(c, "header") for c in (frame or {}).get("header", [])]
    footer = [_instructor_cell(c, "footer") for c in (frame or {}).get("footer", [])]
    src_solutions = {nbgrader_meta(c)["grade_id"]: c for c in source.cells if nbgrader_meta(c).get("solution")}
    src_ids = {nbgrader_meta(c).get("grade_id") for c in source.cells} - {None}
    src_tests = {nbgrader_meta(c)["grade_id"]: c for c in source.cells
                 if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")}

    # Copies of the instructor's cells — provided cells that lost their metadata, the release's
    # header and footer — come back as plain cells: they are the instructor's, and so dropped.
    provided = {c.source.strip() for c in source.cells if not nbgrader_meta(c).get("solution")}
    provided |= {visible(c.source) for c in src_tests.values()}
    provided |= {c.source.strip() for c in header + footer}
    answers: dict[str, str] = {}
    seen_tests: dict[str, int] = {}
    extras: dict[str | None, list[NotebookNode]] = {}  # instructor grade_id they follow -> added cells
    anchor: str | None = None
    loose: list[tuple[str | None, NotebookNode]] = []  # student cells, for solution cells lost metadata
    for cell in submitted.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        role = _role(cell)
        if role == "solution" and gid in src_solutions:
            if gid in answers:
                notes.append(f"solution cell {gid} appears twice; the first one was graded")
            else:
                answers[gid] = cell.get("source", "")
            anchor = gid
        elif gid in src_ids:
            if gid in src_tests:
                seen_tests[gid] = seen_tests.get(gid, 0) + 1
                if seen_tests[gid] == 2:
                    notes.append(f"test cell {gid} appears twice; the copy was ignored")
                elif seen_tests[gid] == 1 and visible(cell.get("source", "")) != visible(src_tests[gid].source):
                    notes.append(f"test cell {gid} was edited; the instructor's version was run")
            anchor = gid
        elif role == "instructor":
            notes.append(f"cell {gid!r} is not in the assignment; it was ignored")
        elif cell.get("source", "").strip() not in provided:
            loose.append((anchor, cell))

    # Solution cells whose nbgrader metadata was stripped: found by what they define.
    for gid, src_cell in src_solutions.items():
        if gid in answers:
            continue
        wanted = defined_names(src_cell.source)
        best = max(((len(wanted & defined_names(c.get("source", ""))), i) for i, (_, c) in enumerate(loose)
                    if c.get("cell_type") == "code"), default=(0, -1))
        if best[0] > 0:
            answers[gid] = loose.pop(best[1])[1].get("source", "")
            notes.append(f"solution cell {gid} had lost its nbgrader metadata; it was found by the names it defines")
        else:
            answers[gid] = STUB
            notes.append(f"solution cell {gid} is missing; graded as unanswered")
    for gid in src_tests:
        if gid not in seen_tests:
            notes.append(f"test cell {gid} was deleted; the instructor's version was put back and run")
    for after, cell in loose:
        extras.setdefault(after, []).append(cell)

    nb = copy.deepcopy(source)
    cells: list[NotebookNode] = list(header)
    added = iter(range(10**6))
    cells += [_student_cell(c, next(added)) for c in extras.pop(None, [])]
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if meta.get("solution"):
            cell.source = answers[gid]
            _mark(cell, ANSWER, answer_exercise(gid))
        elif meta.get("grade") and cell.cell_type == "code":
            _mark(cell, TEST, gid)
        elif cell.cell_type == "code" and str(gid or "").endswith("_show"):
            _mark(cell, FIGURE)
        else:
            _mark(cell, INSTRUCTOR)
        cell.outputs = [] if cell.cell_type == "code" else cell.get("outputs", None) or []
        if cell.cell_type != "code":
            cell.pop("outputs", None)
        else:
            cell.execution_count = None
        cells.append(cell)
        cells += [_student_cell(c, next(added)) for c in extras.pop(gid, [])] if gid else []
    for rest in extras.values():  # anchors that are not in the source: keep the cells at the end
        cells += [_student_cell(c, next(added)) for c in rest]
    nb.cells = cells + footer
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nb, notes


def _instructor_cell(cell: dict, part: str) -> NotebookNode:
    """A cell of the release's header or footer, as the instructor wrote it (no outputs)."""
    out = nbformat.from_dict(copy.deepcopy(dict(cell)))
    out.setdefault("metadata", {})
    if out.get("cell_type") == "code":
        out.outputs, out.execution_count = [], None
    else:
        out.pop("outputs", None)
        out.pop("execution_count", None)
    _mark(out, INSTRUCTOR)
    out.metadata["autograder"]["release"] = part
    return out


def _student_cell(cell: NotebookNode, n: int) -> NotebookNode:
    """A cell the student added, cleaned of outputs and of any nbgrader metadata."""
    if cell.get("cell_type") == "code":
        out = nbformat.v4.new_code_cell(cell.get("source", ""))
    elif cell.get("cell_type") == "markdown":
        out = nbformat.v4.new_markdown_cell(cell.get("source", ""))
    else:
        out = nbformat.v4.new_raw_cell(cell.get("source", ""))
    out.id = f"added-by-student-{n}"  # fixed ids: the same submission gives the same notebook
    _mark(out, ADDED)
    return out
