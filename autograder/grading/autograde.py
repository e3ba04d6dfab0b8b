"""Grade a class: each submission in a worker process of its own, then the gradebook, feedback, grades.csv.

Layout of the output folder ``OUT``::

    OUT/grades.csv                          one row per (student, assignment), kept across runs
    OUT/feedback/<student>/<assignment>/    HTML feedback per notebook
    OUT/results/<assignment>/<student>.json what was scored and why points were lost (the commit point)
    OUT/logs/<assignment>/<student>.log     the worker's output for that student
    OUT/gradebook.db                        nbgrader's gradebook (SQLite), written by this process only
    OUT/nbgrader/                           nbgrader's course directory (autograded/ notebooks)

A worker (:mod:`.worker`) grades one student: the notebook is assembled from the instructor's
source, run in a sandboxed kernel in a scratch folder, scored, and its result JSON written
atomically. ``--workers N`` runs N of them at once. The gradebook is written after the workers,
by this process alone (SQLite takes one writer). Killed mid-batch and run again, the grader keeps
every committed result whose submission, sources and settings are unchanged and grades the rest.
Bad input — a wrong path, an unknown assignment — is refused before anything is written; an
unreadable notebook gets its own row and nothing else is affected; a grade recorded by an earlier
run is never replaced by an unreadable resubmission.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .. import __version__, secret
from ..course import Course, UsageError
from . import feedback as pages
from .nbgrader_cli import flags, jupyter_home, nbgrader
from .notebooks import graded_cells
from .progress import counter
from .results import ERROR, GRADED, StudentResult, load_all, result_path, write_grades_csv
from .sandbox import Limits
from .worker import Job, digest, exercise_id, read_notebooks, zero_result

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

DEFAULT_CELL_TIMEOUT = 120.0
DEFAULT_SUBMISSION_TIMEOUT = 900.0


@dataclass
class Submission:
    student: str
    folder: Path  # where the student's notebooks are


@dataclass
class ClassReport:
    assignment: str
    out: Path
    graded_now: list[StudentResult]  # the students of this run, in order
    exercises: list[tuple[str, float]]  # (grade_id, points) in notebook order
    bad_input: list[str]  # one line per submission that could not be read
    resumed: set[str] = field(default_factory=set)  # students whose result an earlier run had committed

    @property
    def grades_csv(self) -> Path:
        return self.out / "grades.csv"


def find_submissions(submissions_dir: Path, assignment: str) -> tuple[list[Submission], list[str]]:
    """Student folders in ``submissions_dir``: ``<student>/<notebook>.ipynb`` or
    ``<student>/<assignment>/<notebook>.ipynb`` (nbgrader's own layout). Returns the submissions and
    one line for each entry that is not a usable student folder."""
    if not submissions_dir.exists():
        raise UsageError(f"submissions folder {submissions_dir} does not exist")
    if not submissions_dir.is_dir():
        raise UsageError(f"{submissions_dir} is a file; pass the folder that holds one folder per student")
    found, skipped = [], []
    try:
        entries = sorted(submissions_dir.iterdir())
    except OSError as exc:
        raise UsageError(f"cannot list {submissions_dir}: {exc.strerror}") from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            skipped.append(f"{entry.name!r}: a symbolic link, not a student folder; ignored")
            continue
        if not entry.is_dir():
            skipped.append(f"{entry.name}: a file at the top level, not a student folder; ignored")
            continue
        if not STUDENT_ID.match(entry.name):
            skipped.append(f"{entry.name!r}: not usable as a student id (letters, digits, . _ @ + - only); ignored")
            continue
        nested = entry / assignment
        if nested.is_symlink():
            skipped.append(f"{entry.name}/{assignment}: a symbolic link, not a folder; ignored")
            continue
        found.append(Submission(entry.name, nested if nested.is_dir() else entry))
    if not found:
        raise UsageError(f"no student folders in {submissions_dir}; expected <student_id>/<notebook>.ipynb")
    return found, skipped


class ClassGrader:
    """nbgrader's course directory and gradebook under OUT, and the workers that fill them."""

    def __init__(self, course: Course, assignment: str, out: Path, cell_timeout: float,
                 submission_timeout: float, limits: Limits | None = None):
        self.course = course
        self.assignment = assignment
        self.out = out
        self.root = out / "nbgrader"
        self.cell_timeout = cell_timeout
        self.submission_timeout = submission_timeout
        self.limits = limits or Limits()
        self.db_url = f"sqlite:///{out / 'gradebook.db'}"
        self.notebooks = course.notebooks(assignment)
        self.env = jupyter_home(self.root / "home")
        self.settings = {
            "CourseDirectory.root": self.root,
            "CourseDirectory.source_directory": course.solutions,
            "CourseDirectory.release_directory": self.root / "release",
            "CourseDirectory.submitted_directory": "submitted",
            "CourseDirectory.autograded_directory": "autograded",
            "CourseDirectory.feedback_directory": out / "feedback",
            "CourseDirectory.db_url": self.db_url,
        }
        # Exercise ids and points come from the instructor's source, never from a submission.
        self.source_paths = {name: course.solutions / assignment / f"{name}.ipynb" for name in self.notebooks}
        self.sources = {name: nbformat.read(path, as_version=4) for name, path in self.source_paths.items()}
        self.cells = {name: graded_cells(nb) for name, nb in self.sources.items()}
        self.source_digest = hashlib.sha256(b"".join(p.read_bytes() for p in self.source_paths.values())).hexdigest()
        try:
            self.secret = secret.load(course.work)
        except (OSError, ValueError) as exc:
            raise UsageError(f"the course secret cannot be read: {exc}") from None
        self.fingerprint = json.dumps([self.source_digest, self.limits.as_json(), cell_timeout, submission_timeout,
                                       __version__, _package_digest(), hashlib.sha256(self.secret).hexdigest()[:16]])
        self.idle: "queue.Queue[Worker | None]" = queue.Queue()
        self.all_workers: list[Worker] = []
        self.lock = threading.Lock()
        self.threads = 1

    @property
    def exercises(self) -> list[tuple[str, float]]:
        return [(exercise_id(self.notebooks, nb, gid), pts) for nb in self.notebooks for gid, pts in self.cells[nb]]

    @property
    def max_score(self) -> float:
        return sum(p for _, p in self.exercises)

    def run(self, args: list[str], log: Path, timeout: float | None = None):
        return nbgrader([*args, *flags(self.settings)], cwd=self.course.root, env=self.env,
                        timeout=timeout, log=log)

    def prepare(self) -> None:
        """Record the assignment (cells, points, checksums) in OUT's gradebook, unless this exact
        source is already there (a marker holds the source's digest). When the course's release
        is this source's (same exercises and points), nbgrader's own SaveCells records it from the
        release in this process; otherwise nbgrader's generate_assignment does, in a child process."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / ".prepared" / self.assignment
        if (self.out / "gradebook.db").is_file() and marker.is_file() and marker.read_text() == self.source_digest:
            return
        if not self._save_cells_from_release():
            run = self.run(["generate_assignment", self.assignment, "--force"],
                           log=self.out / "logs" / self.assignment / "_generate_assignment.log")
            if not run.ok:
                raise UsageError(f"could not prepare {self.assignment} for grading: "
                                 f"{'; '.join(run.errors()[-2:]) or 'see the log in ' + str(self.out / 'logs')}")
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(self.source_digest)

    def _save_cells_from_release(self) -> bool:
        """nbgrader's SaveCells on the released notebooks, in this process; False (nothing written)
        when a release is missing or does not match the source's exercises and points."""
        releases = {}
        for name in self.notebooks:
            path = self.course.assignments / self.assignment / f"{name}.ipynb"
            try:
                nb = nbformat.read(path, as_version=4)
            except (OSError, ValueError):
                return False
            if graded_cells(nb) != self.cells[name]:
                return False
            releases[name] = nb
        from nbgrader.api import Gradebook
        from nbgrader.preprocessors import SaveCells

        stamp_gradebook(self.out / "gradebook.db")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Gradebook(self.db_url) as gb:
                gb.update_or_create_assignment(self.assignment)
            for name, nb in releases.items():
                SaveCells().preprocess(nb, {"nbgrader": {"db_url": self.db_url, "assignment": self.assignment,
                                                         "notebook": name}})
        return True

    # -- one student --------------------------------------------------------------------------

    def job(self, sub: Submission) -> Job:
        return Job(self.assignment, sub.student, str(sub.folder), self.notebooks,
                   {n: str(p) for n, p in self.source_paths.items()}, str(self.out), asdict(self.limits),
                   self.cell_timeout, self.submission_timeout, digest(sub.folder, self.notebooks, self.fingerprint))

    def recorded(self, job: Job) -> StudentResult | None:
        """The result of an earlier run for exactly this submission, if there is one."""
        path = result_path(self.out, self.assignment, job.student)
        try:
            result = StudentResult.load(path)
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return result if result.digest == job.digest else None

    def precheck(self, sub: Submission, job: Job) -> tuple[StudentResult | None, str | None]:
        """A submission that cannot be read: its result (or the earlier grade, kept) and the bad-input
        line. (None, None) when it can be graded."""
        _, status, message = read_notebooks(sub.folder, self.notebooks, sub.student)
        if message is None:
            return None, None
        previous = result_path(self.out, self.assignment, sub.student)
        if previous.is_file():
            kept = StudentResult.load(previous)
            if kept.status == GRADED:
                kept.message = f"new submission rejected ({message}); earlier grade kept"
                return kept, f"{sub.student}: {message} (earlier grade kept)"
        return zero_result(job, status, message), f"{sub.student}: {message}"

    def grade_one(self, job: Job) -> StudentResult:
        """Hand one student to this thread's worker process and read back the result it committed."""
        jobs = self.out / "jobs" / self.assignment
        jobs.mkdir(parents=True, exist_ok=True)
        job_path = jobs / f"{job.student}.json"
        job.save(job_path)
        log = self.out / "logs" / self.assignment / f"{job.student}.log"
        result_file = result_path(self.out, self.assignment, job.student)
        stale = result_file.stat().st_mtime_ns if result_file.is_file() else None
        worker = self.idle.get()
        if worker is None or not worker.alive():
            worker = self.start_worker()
        try:
            worker.run(job_path, self.submission_timeout + 120)
        finally:
            if worker.alive() and worker.ready:
                self.idle.put(worker)
            else:  # dead, or stopped mid-job: its replacement starts when the next job needs it
                worker.stop()
                self.idle.put(None)
        job_path.unlink(missing_ok=True)
        if result_file.is_file() and result_file.stat().st_mtime_ns != stale:
            result = StudentResult.load(result_file)
            if result.digest == job.digest:
                return result
        why = "did not finish in time" if worker.timed_out else f"stopped with status {worker.returncode()}"
        result = zero_result(job, ERROR, f"grading {why} (log: {log})")
        result.save(self.out)
        return result

    def start_workers(self, n: int) -> None:
        """Start ``n`` workers now (their imports overlap the checks and the gradebook's preparation);
        each gets a share of the cores for its own PyTorch and BLAS threads (the kernels use one)."""
        self.threads = max(1, (os.cpu_count() or 1) // max(1, n))
        for _ in range(n):
            self.idle.put(self.start_worker())

    def start_worker(self) -> "Worker":
        threads = str(self.threads)
        env = {**os.environ, **self.env, "AUTOGRADER_SECRET": self.secret.decode(), "OMP_NUM_THREADS": threads,
               "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads}
        with self.lock:
            log = self.out / "logs" / self.assignment / f"_worker_{len(self.all_workers)}.log"
            worker = Worker(self.out, env, log, self.assignment)
            self.all_workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.all_workers:
            worker.stop()

    # -- the gradebook, written by this process only ---------------------------------------------

    @contextlib.contextmanager
    def gradebook(self):
        """nbgrader's gradebook, open in this process (the only writer), committed on leaving."""
        from nbgrader.api import Gradebook
        from sqlalchemy.exc import SAWarning

        with Gradebook(self.db_url) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's own autoflush noise
            yield gb
            gb.db.commit()

    def record(self, gb, result: StudentResult) -> None:
        """Write one result into the gradebook (idempotent: a resumed run writes it again)."""
        gb.update_or_create_student(result.student)
        submission = gb.update_or_create_submission(self.assignment, result.student)
        points = {c.grade_id: c.points for c in result.cells}
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                key = exercise_id(self.notebooks, notebook.name, grade.name)
                grade.auto_score = points.get(key, 0.0) if result.status == GRADED else 0.0
                grade.manual_score = None
                grade.needs_manual_grade = False

    def feedback(self, results: list[StudentResult], fresh: set[str]) -> None:
        """A one-page explanation for the students of this run who could not be graded (graded
        students' feedback was rendered by their worker, beside their graded notebook)."""
        for result in results:
            if result.status != GRADED and result.student in fresh:
                shutil.rmtree(self.root / "autograded" / result.student / self.assignment, ignore_errors=True)
                folder = self.out / "feedback" / result.student / self.assignment
                shutil.rmtree(folder, ignore_errors=True)
                for name in self.notebooks:
                    pages.error_page(folder / f"{name}.html", self.assignment, name, result.status, result.message,
                                     self.max_score)


class Worker:
    """A long-lived ``python -m autograder.grading.worker --serve`` process: one job file per line
    in, ``done <student>`` per line out. It dies with the grader (and its kernels with it)."""

    def __init__(self, cwd: Path, env: dict[str, str], log: Path, assignment: str):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "autograder.grading.worker", "--serve", assignment], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True, env=env)
        self.buffer = b""
        self.timed_out = False
        self.ready = True  # between jobs: not in the middle of one

    def alive(self) -> bool:
        return self.proc.poll() is None

    def returncode(self) -> int | None:
        return self.proc.poll()

    def run(self, job: Path, timeout: float) -> bool:
        """Grade ``job``; False when the worker died or ran past ``timeout`` seconds."""
        self.timed_out = False
        self.ready = False
        try:
            self.proc.stdin.write(f"{job}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.timed_out = True
                return False
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    return False
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        self.ready = line.startswith(b"done ")
        return self.ready

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        if not self.log.closed:
            self.log.close()


def stamp_gradebook(path: Path) -> None:
    """Give a new gradebook nbgrader's alembic stamp (its migrations' head), computed in this
    process: nbgrader would otherwise run the ``alembic`` command, which is only on PATH inside an
    activated environment."""
    import sqlite3

    from alembic.config import Config
    from alembic.script import ScriptDirectory
    import nbgrader

    db = sqlite3.connect(path)
    try:
        if db.execute("select name from sqlite_master where name='alembic_version'").fetchone():
            return
        config = Config()
        config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
        head = ScriptDirectory.from_config(config).get_current_head()
        db.execute("create table alembic_version (version_num varchar(32) not null)")
        db.execute("insert into alembic_version (version_num) values (?)", (head,))
        db.commit()
    finally:
        db.close()


def _package_digest() -> str:
    """The checks that produce grades: a change in them invalidates recorded results."""
    h = hashlib.sha256()
    base = Path(__file__).resolve().parents[1]
    for path in sorted([*base.glob("*.py"), *base.glob("suites/*.py"), *base.glob("grading/*.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def grade(course: Course, assignment: str, submissions_dir: str | Path, out: str | Path, *,
          cell_timeout: float = DEFAULT_CELL_TIMEOUT, submission_timeout: float = DEFAULT_SUBMISSION_TIMEOUT,
          workers: int = 1, limits: Limits | None = None, regrade: bool = False,
          show_progress: bool = True) -> ClassReport:
    """Autograde every submission of ``assignment`` in ``submissions_dir`` into ``out``.

    Students already graded by an earlier (possibly killed) run with the same submission and the
    same settings keep their result; the rest are graded by ``workers`` processes in parallel.
    """
    course.require(assignment)
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    submissions_dir = Path(submissions_dir).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for grades and feedback")
    for protected in (course.solutions, course.assignments, submissions_dir):
        if out == protected or protected in out.parents:
            raise UsageError(f"--out {out} is inside {protected}; choose a folder of its own")
    submissions, skipped = find_submissions(submissions_dir, assignment)
    out.mkdir(parents=True, exist_ok=True)

    grader = ClassGrader(course, assignment, out, cell_timeout, submission_timeout, limits)
    grader.start_workers(min(workers, len(submissions)))  # their imports overlap what follows here
    try:
        return _grade_class(grader, submissions, skipped, workers, regrade, show_progress)
    finally:
        grader.stop_workers()


def _grade_class(grader: ClassGrader, submissions: list[Submission], skipped: list[str], workers: int,
                 regrade: bool, show_progress: bool) -> ClassReport:
    out, assignment = grader.out, grader.assignment
    grader.prepare()
    results: dict[str, StudentResult] = {}
    resumed: set[str] = set()
    bad: list[str] = list(skipped)
    todo: list[Job] = []
    for sub in submissions:
        job = grader.job(sub)
        early, problem = grader.precheck(sub, job)
        if problem:
            bad.append(problem)
            early.save(out)
            results[sub.student] = early
        elif not regrade and (kept := grader.recorded(job)) is not None:
            results[sub.student] = kept
            resumed.add(sub.student)
        else:
            todo.append(job)

    bar = counter(total=len(submissions), initial=len(results), desc=f"grade {assignment}", unit="student",
                  enable=show_progress)
    try:
        with grader.gradebook() as gb, ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(grader.grade_one, job): job for job in todo}
            for result in results.values():  # the kept and the unreadable, while the workers start
                grader.record(gb, result)
            for future in as_completed(futures):
                result = future.result()
                results[result.student] = result
                grader.record(gb, result)  # as they come: the gradebook is done when the last one is
                bar.set_postfix_str(f"{result.student} {result.score:g}/{result.max_score:g}")
                bar.update(1)
    finally:
        bar.close()
    now = [results[sub.student] for sub in submissions]
    grader.feedback(now, fresh={j.student for j in todo} | {s.student for s in submissions
                                                            if results[s.student].status != GRADED})

    columns: dict[str, list[str]] = {}
    everything = load_all(out)
    for a in sorted({r.assignment for r in everything} | {assignment}, key=_course_order):
        if a == assignment:
            columns[a] = [gid for gid, _ in grader.exercises]
        else:
            columns[a] = [c.grade_id for c in next(r for r in everything if r.assignment == a).cells]
    write_grades_csv(out, everything, columns)
    return ClassReport(assignment, out, now, grader.exercises, bad, resumed)


def _course_order(assignment: str) -> tuple[int, str]:
    head = assignment.split("_")[0][1:]
    return (int(head) if head.isdigit() else 10**6, assignment)
