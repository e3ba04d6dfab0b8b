"""Grading one student, in a process of its own: ``python -m autograder.grading.worker JOB.json``.

Reads the submitted notebooks (a bad one is one line and 0), assembles the notebook to run from
the instructor's source (:mod:`.assemble`), runs it in a sandboxed kernel in a scratch folder
(:mod:`.execute`), scores each test cell, applies the NumPy-only and integrity rules, and writes the autograded
notebooks and then — last, atomically — the student's result JSON, which is the commit point a
resumed batch trusts. It never touches the gradebook: the class grader writes that alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import integrity, numpy_only
from .assemble import assemble
from .execute import DIED, OK, OUTPUT, SKIPPED, TIMEOUT, run_cells
from .notebooks import Unreadable, graded_cells, nbgrader_meta, read_submission
from .results import ERROR, GRADED, MISSING, UNREADABLE, CellResult, StudentResult, first_line
from .sandbox import Limits


@dataclass
class Job:
    assignment: str
    student: str
    folder: str  # the student's folder as handed in (read only)
    notebooks: list[str]
    sources: dict[str, str]  # notebook name -> instructor's source path
    out: str  # the class output folder
    limits: dict
    cell_timeout: float
    budget: float
    digest: str  # what the result is valid for: submission bytes and the grader's fingerprint

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> "Job":
        return cls(**json.loads(path.read_text()))


def digest(folder: Path, notebooks: list[str], fingerprint: str) -> str:
    """What a grade depends on: the submitted notebooks' bytes and the grader's ``fingerprint``
    (sources, settings, grading code); a resumed batch keeps results whose digest matches."""
    h = hashlib.sha256(fingerprint.encode())
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        h.update(path.name.encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()


def exercise_id(assignment_notebooks: list[str], name: str, gid: str) -> str:
    """How grades.csv and the results name an exercise: ``nb:grade_id`` when the assignment has
    several notebooks, the grade_id alone otherwise."""
    return f"{name}:{gid}" if len(assignment_notebooks) > 1 else gid


def grade(job: Job) -> StudentResult:
    out = Path(job.out)
    folder = Path(job.folder)
    limits = Limits(**job.limits)
    sources = {name: nbformat.read(job.sources[name], as_version=4) for name in job.notebooks}
    max_score = sum(p for nb in sources.values() for _, p in graded_cells(nb))
    feedback = f"feedback/{job.student}/{job.assignment}/"
    submitted, status, problem = read_notebooks(folder, job.notebooks, job.student)
    if problem:
        return zero_result(job, status, problem)

    cells: list[CellResult] = []
    notes: list[str] = []
    seconds = cell_seconds = 0.0
    dest = out / "nbgrader" / "autograded" / job.student / job.assignment
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for name in job.notebooks:
        nb, assembly_notes = assemble(sources[name], submitted[name])
        notes += [f"{name}: {n}" if len(job.notebooks) > 1 else n for n in assembly_notes]
        code = [(i, c.source, not _is_test(c)) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        scratch = Path(tempfile.mkdtemp(prefix=f"grade-{job.student}-"))
        try:
            scratch.chmod(0o700)
            start = time.monotonic()
            runs = {r.index: r for r in run_cells(code, scratch, limits, job.cell_timeout, job.budget - seconds)}
            seconds += time.monotonic() - start
            cell_seconds += sum(r.seconds for r in runs.values())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        for i, cell in enumerate(nb.cells):
            if i in runs:
                cell.outputs = runs[i].outputs
                cell.execution_count = None if runs[i].status == SKIPPED else i + 1
        events = _events(nb, runs)
        notes += events
        charged = numpy_only.check_notebook(submitted[name], sources[name]) if numpy_only.applies_to(job.assignment) else {}
        door = integrity.check_notebook(submitted[name], sources[name])
        for i, cell in enumerate(nb.cells):
            if not _is_test(cell):
                continue
            gid, pts = nbgrader_meta(cell)["grade_id"], float(nbgrader_meta(cell).get("points", 0))
            run = runs.get(i)
            reason = _failure(cell, run)
            if reason and "MemoryError" in reason and "memory cap" not in reason:
                reason += f" (each kernel's memory cap is {limits.memory_mb} MiB)"
            if door:
                why = integrity.explain(door)
                cell.outputs.insert(0, nbformat.v4.new_output("error", ename="IntegrityRule", evalue=why, traceback=[]))
                reason = why
            elif gid in charged:
                why = numpy_only.explain(gid, charged[gid])
                cell.outputs.insert(0, nbformat.v4.new_output("error", ename="NumPyOnly", evalue=why, traceback=[]))
                reason = why
            cells.append(CellResult(exercise_id(job.notebooks, name, gid), 0.0 if reason else pts, pts, reason))
        mine = {exercise_id(job.notebooks, name, gid) for gid, _ in graded_cells(sources[name])}
        nb.cells.insert(0, _report_cell([c for c in cells if c.grade_id in mine], assembly_notes + events))
        path = dest / f"{name}.ipynb"
        nbformat.write(nb, path)
    message = "; ".join(notes)
    return StudentResult(job.student, job.assignment, GRADED, max_score, cells, message, feedback,
                         digest=job.digest, seconds=round(seconds, 1), cell_seconds=round(cell_seconds, 1))


def read_notebooks(folder: Path, notebooks: list[str], student: str) -> tuple[dict, str, str | None]:
    """(notebooks read, status, None) or ({}, MISSING or UNREADABLE, the one-line reason)."""
    submitted, problems, status = {}, [], GRADED
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        if not path.is_file():
            others = sorted(p.name for p in folder.glob("*.ipynb"))
            status = MISSING
            problems.append(f"no {name}.ipynb in {student}/"
                            + (f" (found: {', '.join(others)})" if others else " (no notebooks at all)"))
            continue
        try:
            submitted[name] = read_submission(path)
        except Unreadable as exc:
            status = UNREADABLE if status == GRADED else status
            problems.append(str(exc))
    return ({}, status, "; ".join(problems)) if problems else (submitted, GRADED, None)


def _report_cell(cells: list[CellResult], notes: list[str]):
    """A markdown cell opening the feedback: the score, every lost point and why, and the notes."""
    got, total = sum(c.points for c in cells), sum(c.max_points for c in cells)
    lines = ["## Grading report", "", f"**{got:g} / {total:g} points.**", ""]
    lost = [c for c in cells if c.points < c.max_points]
    if lost:
        lines += ["Points lost:", ""]
        lines += [f"- `{c.grade_id}` (−{c.max_points - c.points:g}): {first_line(c.reason, 400)}" for c in lost]
    else:
        lines.append("No points lost.")
    if notes:
        lines += ["", "What the grader did with your notebook:", ""] + [f"- {n}" for n in notes]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.id = "grading-report"
    return cell


def zero_result(job: Job, status: str, message: str) -> StudentResult:
    """0 in every test cell, with the one-line reason."""
    sources = {name: nbformat.read(job.sources[name], as_version=4) for name in job.notebooks}
    cells = [CellResult(exercise_id(job.notebooks, n, gid), 0.0, pts, f"not graded: {status}")
             for n, nb in sources.items() for gid, pts in graded_cells(nb)]
    return StudentResult(job.student, job.assignment, status, sum(c.max_points for c in cells), cells, message,
                         f"feedback/{job.student}/{job.assignment}/", digest=job.digest)


def _is_test(cell) -> bool:
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _failure(cell, run) -> str | None:
    """Why a test cell earns nothing, or None when it passed."""
    if run is None:
        return "the cell did not run"
    if run.status != OK:
        return run.reason or run.status
    for out in cell.outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            return ("the cell wrote to stderr, which counts as a failure (as in nbgrader's Validate): "
                    + first_line(out.get("text")))
    return None


def _events(nb, runs) -> list[str]:
    """One note per cell outside the tests that timed out, printed too much, or lost its kernel."""
    notes = []
    for i, cell in enumerate(nb.cells):
        run = runs.get(i)
        if run is None or _is_test(cell) or run.status not in (TIMEOUT, OUTPUT, DIED):
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        where = f"solution cell {gid}" if gid else f"cell {i + 1}"
        notes.append(f"{where}: {first_line(run.reason)}")
    return notes


def _die_with_parent() -> None:
    """A grader killed mid-batch takes its workers (and through bubblewrap, their kernels) with it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def main(argv: list[str]) -> int:
    _die_with_parent()
    job = Job.load(Path(argv[0]))
    try:
        result = grade(job)
    except Exception as exc:  # a grader bug or a file that vanished: this student only
        result = zero_result(job, ERROR, f"grading failed: {type(exc).__name__}: {exc}")
        print(f"{job.student}: {result.message}", file=sys.stderr)
        result.save(Path(job.out))
        return 1
    result.save(Path(job.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
