"""Grading one student, outside the student's process: assemble, run, judge, score, write.

:func:`grade_notebook` is the one path Validate and grade share. For one submitted notebook it

1. assembles the notebook to grade from the instructor's source (:mod:`.assemble`, which decides
   every cell's role);
2. runs the notebook's own cells — the provided code, the student's answers and added cells — in
   a sandboxed kernel whose Python path is the assignment's (:mod:`.execute`, :mod:`.sandbox`);
   figure cells (``*_show``) are not run, and test cells never run in the kernel;
3. at each test cell, judges the exercise from here (:mod:`.judge`): the instructor's test code
   runs in this process against the kernel, through the data-only protocol;
4. charges an exercise that uses a function its own text forbids (:mod:`.restrictions`).

:func:`grade` does that for every notebook of a job and writes the graded notebooks, their HTML
feedback and then — last, atomically — the student's result JSON, the commit point a resumed batch
trusts. It never touches the gradebook: the class grader writes that alone.

``python -m autograder.grading.worker --serve`` is a long-lived worker: it reads job files from
its standard input, one per line, and answers ``done <student>`` for each, so that the imports
(PyTorch, the references, nbconvert) are paid once per worker instead of once per student.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat.notebooknode import NotebookNode

from .. import secret
from . import feedback, restrictions
from .assemble import ADDED, ANSWER, FIGURE, TEST, assemble, exercise_of, role, visible
from .execute import DIED, OUTPUT, SKIPPED, TIMEOUT, Budget, KernelSession, SandboxedKernel
from .notebooks import Unreadable, graded_cells, nbgrader_meta, read_submission
from .results import ERROR, GRADED, MISSING, UNREADABLE, CellResult, StudentResult, first_line
from .sandbox import KernelSite, Limits


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
    frame: dict = field(default_factory=dict)  # the release's header and footer cells (release.frame)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> "Job":
        return cls(**json.loads(path.read_text()))


def digest(folder: Path, notebooks: list[str], fingerprint: str) -> str:
    """What a grade depends on: the submitted notebooks' bytes and the grader's ``fingerprint``
    (sources, settings, grading code, course secret); a resumed batch keeps results whose digest matches."""
    h = hashlib.sha256(fingerprint.encode())
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        h.update(path.name.encode())
        try:
            h.update(path.read_bytes() if path.is_file() and not path.is_symlink() else b"<missing>")
        except OSError:  # unreadable: the pre-check says so; the digest only has to be stable
            h.update(b"<unreadable>")
    return h.hexdigest()


def exercise_id(assignment_notebooks: list[str], name: str, gid: str) -> str:
    """How grades.csv and the results name an exercise: ``nb:grade_id`` when the assignment has
    several notebooks, the grade_id alone otherwise."""
    return f"{name}:{gid}" if len(assignment_notebooks) > 1 else gid


# ---------------------------------------------------------------------------------------------
# One notebook: the path Validate and grade share
# ---------------------------------------------------------------------------------------------

@dataclass
class Graded:
    notebook: NotebookNode  # what was graded, with outputs and verdicts, safe to show
    verdicts: list  # judge.Verdict per test cell, in notebook order
    notes: list[str] = field(default_factory=list)  # what the grader did with the notebook
    charged: dict = field(default_factory=dict)  # exercise -> the restriction it broke
    seconds: float = 0.0
    cell_seconds: float = 0.0


_SITES: dict[str, KernelSite] = {}


def site_for(assignment: str) -> KernelSite:
    """The assignment's kernel Python path, made once per process."""
    if assignment not in _SITES:
        _SITES[assignment] = KernelSite(assignment)
    return _SITES[assignment]


# A served worker (``--serve``, many notebooks one after another) starts the next notebook's kernel as
# soon as it takes one: the new kernel boots (half a second of its own CPU) on another core while this
# notebook runs, instead of on the clock between two notebooks. It is an empty kernel in a scratch
# folder of its own, started before anyone's notebook is read, so nothing of one student reaches
# another. Only for ``--serve``: a single notebook (Validate, one job) would start one for nobody.
SPARES = False
_spare: tuple[tuple[str, Limits], Path, SandboxedKernel] | None = None


def _scratch() -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="ag-"))
    scratch.chmod(0o700)
    return scratch


def drop_spare() -> None:
    """Stop the kernel started ahead, if any, and remove its scratch folder."""
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare[2].shutdown()
        shutil.rmtree(spare[1], ignore_errors=True)


def _take_spare(assignment: str, limits: Limits) -> tuple[Path, SandboxedKernel | None]:
    """The scratch folder and the kernel started ahead for this assignment and these limits (a fresh
    folder and None when there is none), and the next notebook's kernel started."""
    global _spare
    if not SPARES:
        return _scratch(), None
    taken = None
    if _spare is not None and _spare[0] == (assignment, limits):
        taken, _spare = _spare, None
    _start_spare(assignment, limits)
    return (taken[1], taken[2]) if taken is not None else (_scratch(), None)


def _start_spare(assignment: str, limits: Limits) -> None:
    global _spare
    drop_spare()
    scratch = _scratch()
    try:
        _spare = ((assignment, limits), scratch, SandboxedKernel(scratch, limits, site_for(assignment), wait=False))
    except Exception:  # noqa: BLE001 - it will fail again, and say why, when a notebook needs it
        shutil.rmtree(scratch, ignore_errors=True)


def grade_notebook(source: NotebookNode, submitted: NotebookNode, assignment: str, *, limits: Limits,
                   cell_timeout: float, deadline: float, hidden: bool, log: Any = None,
                   frame: dict | None = None) -> Graded:
    """Assemble, run and judge one submitted notebook (see the module's docstring); ``frame``: the
    release's header and footer, put back as the instructor's (:func:`.assemble.assemble`)."""
    from . import judge

    nb, notes = assemble(source, submitted, frame)
    start = time.monotonic()
    scratch, spare = _take_spare(assignment, limits)
    session = KernelSession(scratch, limits, site_for(assignment), cell_timeout, deadline, spare=spare)
    channel = judge.AgentChannel(session)
    verdicts, cell_seconds = [], 0.0
    stopped: dict[str, str] = {}  # exercise -> how its answer cell failed when it ran
    added = Budget()  # the cells the student added share a little kernel time (a scratch cell needs less)
    try:
        for i, cell in enumerate(nb.cells):
            kind = role(cell)
            if cell.cell_type == "markdown" and kind == ADDED:
                feedback.safe_markdown(cell)
            if cell.cell_type != "code":
                continue
            if kind == FIGURE:
                cell.outputs, cell.execution_count = [], None
                continue
            if kind == TEST:
                meta = nbgrader_meta(cell)
                gid, pts = meta["grade_id"], float(meta.get("points", 0))
                left = session.left()
                if left <= 1:
                    verdict = judge.Verdict(gid, pts, False, "not run: the submission's time ran out")
                else:
                    verdict = judge.judge(channel, gid, pts, cell.source, hidden=hidden,
                                          seconds=min(cell_timeout, left), log=log)
                if not verdict.passed and gid in stopped:
                    verdict.message = (f"{verdict.message or 'failed'}\n  Note: its solution cell {gid}_code stopped "
                                       f"with {stopped[gid]}; fix that first.")
                verdicts.append(verdict)
                notes += verdict.notes
                cell_seconds += verdict.seconds
                cell.source = visible(cell.source)  # the feedback never shows the hidden tests
                cell.outputs = feedback.verdict_outputs(verdict.passed, verdict.message, verdict.output)
                cell.execution_count = i + 1
                continue
            run = session.run(i, cell.source, budget=added if kind == ADDED else None)
            cell_seconds += run.seconds
            if kind == ANSWER and run.status != "ok" and run.reason:
                stopped[exercise_of(cell)] = first_line(run.reason, 300)
            cell.outputs = feedback.safe_outputs(run.outputs)
            cell.execution_count = None if run.status == SKIPPED else i + 1
            if run.status == SKIPPED and kind == ADDED and added.allowance() <= 0 and not added.noted:
                added.noted = True
                notes.append(f"cell {i + 1} and the cells you added after it: {first_line(run.reason)}")
            if run.status in (TIMEOUT, OUTPUT, DIED):
                gid = nbgrader_meta(cell).get("grade_id")
                where = f"solution cell {gid}" if gid else f"cell {i + 1}"
                notes.append(f"{where}: {first_line(run.reason)}")
    finally:
        session.close()
        shutil.rmtree(scratch, ignore_errors=True)
    charged = restrictions.check(nb, assignment)
    for verdict in verdicts:
        if verdict.grade_id in charged:
            verdict.passed, verdict.hidden = False, False
            verdict.message = restrictions.explain(verdict.grade_id, charged[verdict.grade_id], assignment)
        elif not verdict.passed and verdict.message and "MemoryError" in verdict.message:
            verdict.message += f" (each kernel's memory cap is {limits.memory_mb} MiB)"
        elif not verdict.passed and verdict.message and "No space left on device" in verdict.message:
            verdict.message += f" (a kernel's /tmp and its working folder hold at most {limits.space_mb} MiB each)"
    for cell in nb.cells:  # the restriction's message where the student will look: the test cell
        if role(cell) == TEST and nbgrader_meta(cell).get("grade_id") in charged:
            gid = nbgrader_meta(cell)["grade_id"]
            cell.outputs = feedback.verdict_outputs(False, restrictions.explain(gid, charged[gid], assignment), "")
    return Graded(nb, verdicts, notes, charged, time.monotonic() - start, cell_seconds)


# ---------------------------------------------------------------------------------------------
# One student
# ---------------------------------------------------------------------------------------------

def grade(job: Job, log: Any = None) -> StudentResult:
    out = Path(job.out)
    folder = Path(job.folder)
    limits = Limits(**job.limits)
    sources = {name: nbformat.read(job.sources[name], as_version=4) for name in job.notebooks}
    max_score = sum(p for nb in sources.values() for _, p in graded_cells(nb))
    where = f"feedback/{job.student}/{job.assignment}/"
    submitted, status, problem = read_notebooks(folder, job.notebooks, job.student)
    if problem:
        return zero_result(job, status, problem)

    cells: list[CellResult] = []
    notes: list[str] = []
    seconds = cell_seconds = 0.0
    dest = out / "nbgrader" / "autograded" / job.student / job.assignment
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    deadline = time.monotonic() + job.budget
    rendered = []
    for name in job.notebooks:
        graded = grade_notebook(sources[name], submitted[name], job.assignment, limits=limits,
                                cell_timeout=job.cell_timeout, deadline=deadline, hidden=True, log=log,
                                frame=job.frame)
        notes += [f"{name}: {n}" if len(job.notebooks) > 1 else n for n in graded.notes]
        seconds += graded.seconds
        cell_seconds += graded.cell_seconds
        mine = []
        for v in graded.verdicts:
            cell = CellResult(exercise_id(job.notebooks, name, v.grade_id), v.points, v.max_points,
                              None if v.passed else (v.message or "failed"))
            cells.append(cell)
            mine.append((cell.grade_id, cell.points, cell.max_points, cell.reason))
        graded.notebook.cells.insert(0, feedback.report_cell(job.assignment, mine, graded.notes))
        nbformat.write(graded.notebook, dest / f"{name}.ipynb")
        rendered.append((name, graded.notebook))
    for name, nb in rendered:
        feedback.render(nb, out / where / f"{name}.html")
    keep_exchange_files(folder, [dest, out / where])
    return StudentResult(job.student, job.assignment, GRADED, max_score, cells, "; ".join(notes), where,
                         digest=job.digest, seconds=round(seconds, 1), cell_seconds=round(cell_seconds, 1))


def keep_exchange_files(folder: Path, into: list[Path]) -> None:
    """The submission's timestamp and exchange secret beside its graded notebooks and its feedback,
    where nbgrader's generate_feedback and release_feedback look for them (the secret is what
    hands the feedback to this student alone)."""
    for name in ("timestamp.txt", "submission_secret.txt"):
        src = folder / name
        try:
            if src.is_symlink() or not src.is_file() or src.stat().st_size > 200:
                continue
            data = src.read_bytes()
        except OSError:
            continue
        for dest in into:
            dest.mkdir(parents=True, exist_ok=True)
            (dest / name).unlink(missing_ok=True)  # nbgrader leaves its copies read-only
            (dest / name).write_bytes(data)


def read_notebooks(folder: Path, notebooks: list[str], student: str) -> tuple[dict, str, str | None]:
    """(notebooks read, status, None) or ({}, MISSING or UNREADABLE, the one-line reason)."""
    submitted, problems, status = {}, [], GRADED
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        if path.is_symlink() or (path.exists() and not path.is_file()):
            status = UNREADABLE if status == GRADED else status
            what = "a symbolic link" if path.is_symlink() else "not a regular file (a folder, a pipe or a device)"
            problems.append(f"{name}.ipynb is {what}; hand in the notebook file itself")
            continue
        if not path.is_file():
            try:
                others = sorted(p.name for p in folder.glob("*.ipynb"))
            except OSError:
                others = []
            status = MISSING
            problems.append(f"no {name}.ipynb in {student}/"
                            + (f" (found: {', '.join(map(repr, others))})" if others else " (no notebooks at all)"))
            continue
        try:
            submitted[name] = read_submission(path)
        except Unreadable as exc:
            status = UNREADABLE if status == GRADED else status
            problems.append(str(exc))
    return ({}, status, "; ".join(problems)) if problems else (submitted, GRADED, None)


def zero_result(job: Job, status: str, message: str) -> StudentResult:
    """0 in every test cell, with the one-line reason."""
    sources = {name: nbformat.read(job.sources[name], as_version=4) for name in job.notebooks}
    cells = [CellResult(exercise_id(job.notebooks, n, gid), 0.0, pts, f"not graded: {status}")
             for n, nb in sources.items() for gid, pts in graded_cells(nb)]
    return StudentResult(job.student, job.assignment, status, sum(c.max_points for c in cells), cells, message,
                         f"feedback/{job.student}/{job.assignment}/", digest=job.digest)


JUDGE_MEMORY_MB = 8192  # a worker's own memory cap (``$AUTOGRADER_JUDGE_MEMORY_MB``; 0: none)


def judge_memory_mb() -> int:
    import os

    try:
        return max(0, int(os.environ.get("AUTOGRADER_JUDGE_MEMORY_MB", JUDGE_MEMORY_MB)))
    except ValueError:
        return JUDGE_MEMORY_MB


def cap_memory(mb: int) -> None:
    """Cap this worker's data (heap and private memory: ``RLIMIT_DATA``), so that whatever a kernel
    makes the judge hold — a reply, the kernel's output, a check's arrays — ends in a MemoryError
    that costs the submission being graded, not a machine out of memory. Address space
    (``RLIMIT_AS``) would also count the GPU driver's reserved ranges; data does not. Only the soft
    limit: the sandbox gives each kernel its own caps (:func:`.sandbox.apply_limits`)."""
    if mb <= 0 or not sys.platform.startswith("linux"):
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    value = mb * 2**20 if hard == resource.RLIM_INFINITY else min(mb * 2**20, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (value, hard))
    except (ValueError, OSError):
        pass


def _die_with_parent() -> None:
    """A grader killed mid-batch takes its workers (and through them, their kernels) with it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def run_job(path: Path) -> StudentResult:
    """Grade the job at ``path`` and commit its result (a grader bug costs this student only)."""
    job = Job.load(path)
    log_path = Path(job.out) / "logs" / job.assignment / f"{job.student}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # the hidden cases are this student's and this submission's: digest("") is the submitted bytes alone
    salt = secret.submission_salt(job.student, digest(Path(job.folder), job.notebooks, ""))
    with log_path.open("w") as log, secret.using(_secret(), salt):
        try:
            result = grade(job, log)
        except MemoryError:  # the worker's own cap (cap_memory): this submission made the judge hold too much
            import traceback

            log.write(traceback.format_exc())
            result = zero_result(job, ERROR, "grading stopped: this submission made the grader use more than its "
                                             f"{judge_memory_mb()} MiB memory cap")
        except Exception as exc:  # noqa: BLE001 - a grader bug or a file that vanished: this student only
            import traceback

            log.write(traceback.format_exc())
            result = zero_result(job, ERROR, f"grading failed: {type(exc).__name__}: {exc}")
    result.save(Path(job.out))
    return result


def _secret() -> bytes | None:
    import os

    value = os.environ.get("AUTOGRADER_SECRET")
    return value.encode() if value else None


def warm(assignment: str) -> None:
    """What every job of ``assignment`` needs, made before the first one arrives (while the class
    grader checks the submissions): its suite and references, its kernel site, the HTML exporter."""
    import importlib

    try:
        importlib.import_module(f"autograder.suites.{assignment}")
    except ImportError:
        pass
    site_for(assignment)
    if SPARES:  # the first notebook's kernel, with the default limits (what a class is graded with)
        _start_spare(assignment, Limits())
    feedback.exporter()


def main(argv: list[str]) -> int:
    _die_with_parent()
    cap_memory(judge_memory_mb())
    if argv[:1] == ["--serve"]:
        import os

        answers = os.fdopen(os.dup(1), "w", buffering=1)  # the class grader reads only this
        os.dup2(2, 1)  # whatever else writes to standard output (a library, a child) goes to the log
        global SPARES
        SPARES = True
        if len(argv) > 1:
            warm(argv[1])
        try:
            for line in sys.stdin:
                path = line.strip()
                if not path:
                    continue
                result = run_job(Path(path))
                answers.write(f"done {result.student}\n")
        finally:
            drop_spare()
        return 0
    run_job(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
