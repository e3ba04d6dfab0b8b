"""Grade a class: each submission in a worker process of its own, then the gradebook, feedback, grades.csv.

Layout of the output folder ``OUT``::

    OUT/grades.csv                          one row per (student, assignment), kept across runs
    OUT/feedback/<student>/<assignment>/    HTML feedback per notebook
    OUT/results/<assignment>/<student>.json what was scored and why points were lost (the commit point)
    OUT/logs/<assignment>/<student>.log     the worker's output for that student
    OUT/gradebook.db                        nbgrader's gradebook (SQLite; or any database, --db-url)
    OUT/nbgrader/                           nbgrader's course directory (autograded/ notebooks)

A worker (:mod:`.worker`) grades one student: the notebook is assembled from the instructor's
source, run in a sandboxed kernel in a scratch folder, scored, and its result JSON written
atomically. The engine decides where workers run: ``--workers N`` local processes
(:class:`LocalEngine`), or a Dask cluster (``--scheduler``, :mod:`.cluster`), whose answers this
process commits into OUT. The gradebook is written by this process alone, one short transaction
per student as results arrive (:mod:`.gradebook`). Killed mid-batch and run again, the grader keeps
every committed result whose submission, sources and settings are unchanged and grades the rest.
Bad input — a wrong path, an unknown assignment — is refused before anything is written; an
unreadable notebook gets its own row and nothing else is affected; a grade recorded by an earlier
run is never replaced by an unreadable resubmission.

What people enter in formgrader is theirs: a run writes the automatic scores only, and every
manual score, extra credit and comment in the gradebook stays — whether the submission's result
was kept or graded again. Where a hand grade's automatic score changes, the cell is flagged for
review (nbgrader's ``needs_manual_grade``). grades.csv shows the final score (hand grades where
given, extra credit added), the automatic one, and whether a hand grade applies. Students' names
come from the course's roster (:mod:`.roster`); submission times from the submissions (:mod:`.late`).
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
from . import gradebook as books
from . import late
from . import roster as rosters
from .nbgrader_cli import flags, jupyter_home, nbgrader
from .notebooks import graded_cells
from .progress import counter
from .release import frame as release_frame
from .results import ERROR, GRADED, HandGrade, StudentResult, load_all, result_path, write_grades_csv
from .sandbox import KernelSite, Limits
from .worker import Job, digest, exercise_id, read_notebooks, zero_result

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")

DEFAULT_CELL_TIMEOUT = 120.0
DEFAULT_SUBMISSION_TIMEOUT = 900.0


@dataclass
class Submission:
    student: str
    folder: Path  # where the student's notebooks are
    submitted_at: "late.Timestamp | None" = None  # nbgrader's timestamp, when the layout has one
    note: str = ""  # e.g. which of several submissions this is


@dataclass
class ClassReport:
    assignment: str
    out: Path
    graded_now: list[StudentResult]  # the students of this run, in order
    exercises: list[tuple[str, float]]  # (grade_id, points) in notebook order
    bad_input: list[str]  # one line per submission that could not be read
    resumed: set[str] = field(default_factory=set)  # students whose result an earlier run had committed
    hand: dict = field(default_factory=dict)  # student -> exercise -> HandGrade (formgrader's, this assignment)
    final: dict = field(default_factory=dict)  # student -> the final score (hand grades applied), where one applies

    @property
    def grades_csv(self) -> Path:
        return self.out / "grades.csv"


def find_submissions(submissions_dir: Path, assignment: str) -> tuple[list[Submission], list[str]]:
    """Student folders in ``submissions_dir``, in any of three layouts:

    * ``<student>/<notebook>.ipynb``;
    * ``<student>/<assignment>/<notebook>.ipynb`` — nbgrader's ``submitted/`` after ``nbgrader collect``;
    * ``<student>+<assignment>+<timestamp>[+<random>]/<notebook>.ipynb`` — nbgrader's exchange
      ``inbound/`` folder, where each ``nbgrader submit`` leaves one: the newest per student is graded.

    A ``timestamp.txt`` beside the notebooks says when they were handed in. Returns the
    submissions and one line for each entry that is not a usable student folder."""
    if not submissions_dir.exists():
        raise UsageError(f"submissions folder {submissions_dir} does not exist")
    if not submissions_dir.is_dir():
        raise UsageError(f"{submissions_dir} is a file; pass the folder that holds one folder per student")
    found, skipped = [], []
    inbound: dict[str, list[tuple[late.Timestamp, Path]]] = {}
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
        if "+" in entry.name:  # nbgrader's exchange: student+assignment+timestamp[+random]
            parts = entry.name.split("+")
            if len(parts) < 3 or not STUDENT_ID.match(parts[0]):
                skipped.append(f"{entry.name!r}: not an nbgrader exchange submission "
                               "(<student>+<assignment>+<timestamp>); ignored")
                continue
            if parts[1] != assignment:
                continue  # another assignment's submission
            when = late.read_timestamp(entry)
            if when is None:
                try:
                    when = late.parse(parts[2])
                except ValueError:
                    skipped.append(f"{entry.name!r}: no timestamp.txt and no time in its name; ignored")
                    continue
            inbound.setdefault(parts[0], []).append((when, entry))
            continue
        if not STUDENT_ID.match(entry.name):
            skipped.append(f"{entry.name!r}: not usable as a student id (letters, digits, . _ @ + - only); ignored")
            continue
        nested = entry / assignment
        if nested.is_symlink():
            skipped.append(f"{entry.name}/{assignment}: a symbolic link, not a folder; ignored")
            continue
        folder = nested if nested.is_dir() else entry
        found.append(Submission(entry.name, folder, late.read_timestamp(folder)))
    for student, handed in sorted(inbound.items()):
        if any(s.student == student for s in found):
            skipped.append(f"{student}: both a student folder and exchange submissions; graded the folder")
            continue
        handed.sort(key=lambda t: (t[0], t[1].name))
        when, folder = handed[-1]
        note = f"graded the newest of {len(handed)} submissions" if len(handed) > 1 else ""
        found.append(Submission(student, folder, when, note))
    found.sort(key=lambda s: s.student)
    if not found:
        raise UsageError(f"no student folders in {submissions_dir}; expected <student_id>/<notebook>.ipynb")
    return found, skipped


class ClassGrader:
    """nbgrader's course directory and gradebook under OUT, and the workers that fill them."""

    def __init__(self, course: Course, assignment: str, out: Path, cell_timeout: float,
                 submission_timeout: float, limits: Limits | None = None, db_url: str | None = None,
                 roster: dict | None = None):
        self.course = course
        self.roster = roster or {}  # student id -> first_name, last_name, email, lms_user_id (roster.read)
        self.assignment = assignment
        self.out = out
        self.root = out / "nbgrader"
        self.cell_timeout = cell_timeout
        self.submission_timeout = submission_timeout
        self.limits = limits or Limits()
        self.db_url = db_url or books.default_url(out)
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
        self.frame = release_frame(course)  # the release's header and footer: the instructor's cells
        try:
            self.secret = secret.load(course.work)
        except (OSError, ValueError) as exc:
            raise UsageError(f"the course secret cannot be read: {exc}") from None
        self.fingerprint = json.dumps([self.source_digest, self.limits.as_json(), cell_timeout, submission_timeout,
                                       hashlib.sha256(json.dumps(self.frame, sort_keys=True).encode()).hexdigest(),
                                       __version__, _package_digest(), hashlib.sha256(self.secret).hexdigest()[:16]])
        self.idle: "queue.Queue[Worker | None]" = queue.Queue()
        self.all_workers: list[Worker] = []
        self.lock = threading.Lock()

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
        """Record the assignment (cells, points, checksums) in the gradebook, unless this exact
        source is already there (a marker holds the source's digest and the database). When the
        course's release is this source's (same exercises and points), nbgrader's own SaveCells
        records it from the release in this process; otherwise nbgrader's generate_assignment does,
        in a child process. Under the database's lock: two runs never make its tables at once."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / ".prepared" / self.assignment
        stamp = json.dumps([self.source_digest, hashlib.sha256(self.db_url.encode()).hexdigest()])
        if marker.is_file() and marker.read_text() == stamp and self._recorded_in_gradebook():
            return
        with books.locked(self.db_url):
            books.stamp(self.db_url)
            if not self._save_cells_from_release():
                run = self.run(["generate_assignment", self.assignment, "--force"],
                               log=self.out / "logs" / self.assignment / "_generate_assignment.log")
                if not run.ok:
                    raise UsageError(f"could not prepare {self.assignment} for grading: "
                                     f"{'; '.join(run.errors()[-2:]) or 'see the log in ' + str(self.out / 'logs')}")
        marker.parent.mkdir(exist_ok=True)
        marker.write_text(stamp)

    def _recorded_in_gradebook(self) -> bool:
        """The gradebook holds this assignment with the source's graded cells (a database emptied
        or replaced since the marker was written does not)."""
        if self.db_url == books.default_url(self.out) and not (self.out / "gradebook.db").is_file():
            return False
        try:
            with books.opened(self.db_url) as gb:
                assignment = gb.find_assignment(self.assignment)
                have = {(nb.name, c.name, float(c.max_score)) for nb in assignment.notebooks for c in nb.grade_cells}
        except Exception:  # noqa: BLE001 - not there (MissingEntry), or anything else amiss: prepare again
            return False
        want = {(nb, gid, pts) for nb in self.notebooks for gid, pts in self.cells[nb]}
        return want <= have

    def _save_cells_from_release(self) -> bool:
        """nbgrader's SaveCells on the released notebooks, in this process; False (nothing written)
        when a release is missing or does not match the source's exercises and points."""
        return save_release_cells(self.course, self.assignment, self.db_url, self.cells)

    # -- one student --------------------------------------------------------------------------

    def job(self, sub: Submission) -> Job:
        return Job(self.assignment, sub.student, str(sub.folder), self.notebooks,
                   {n: str(p) for n, p in self.source_paths.items()}, str(self.out), asdict(self.limits),
                   self.cell_timeout, self.submission_timeout, digest(sub.folder, self.notebooks, self.fingerprint),
                   self.frame)

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
            if worker.reusable:
                self.idle.put(worker)
            else:  # dead, or stopped mid-job: its replacement starts when the next job needs it
                worker.stop()
                self.idle.put(None)
        job_path.unlink(missing_ok=True)
        if result_file.is_file() and result_file.stat().st_mtime_ns != stale:
            result = StudentResult.load(result_file)
            if result.digest == job.digest:
                return result
        result = zero_result(job, ERROR, f"grading {worker.failure} (log: {log})")
        result.save(self.out)
        return result

    def start_workers(self, n: int) -> None:
        """Start ``n`` workers now (their imports overlap the checks and the gradebook's preparation).
        Each runs its own PyTorch and BLAS on one thread (:meth:`Worker.environment`)."""
        for _ in range(n):
            self.idle.put(self.start_worker())

    def start_worker(self) -> "Worker":
        env = Worker.environment(self.env, self.secret.decode())
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
        """nbgrader's gradebook, open in this process (the only writer of this run)."""
        with books.opened(self.db_url) as gb:
            yield gb

    def settle(self, result: StudentResult, sub: Submission, rules: "late.Rules") -> dict:
        """Give ``result`` its submission time, lateness and nbgrader's late penalty (and the note
        saying which submission was graded); saved when that changed anything. Returns notebook ->
        penalty, for the gradebook."""
        scores = {}
        for nb in self.notebooks:
            ids = {exercise_id(self.notebooks, nb, gid) for gid, _ in self.cells[nb]}
            scores[nb] = sum(c.points for c in result.cells if c.grade_id in ids) if result.status == GRADED else 0.0
        seconds, penalties = rules.penalty(result.student, scores, sub.submitted_at)
        before = (result.submitted_at, result.seconds_late, result.late_penalty, result.message)
        result.submitted_at = late.shown(sub.submitted_at)
        result.seconds_late = round(seconds, 1)
        result.late_penalty = sum(p for p in penalties.values() if p)
        if sub.note and sub.note not in result.message:
            result.message = "; ".join(m for m in (result.message, sub.note) if m)
        if (result.submitted_at, result.seconds_late, result.late_penalty, result.message) != before:
            result.save(self.out)
        return penalties

    def record(self, gb, result: StudentResult, when: "late.Timestamp | None" = None,
               penalties: dict | None = None, rules: "late.Rules | None" = None) -> None:
        """Write one result into the gradebook as one transaction, retried when another run
        writing the same database conflicted (idempotent: a resumed run writes it again).

        Only the automatic part is the grader's: ``auto_score`` of the exercises it scores. Manual
        scores, extra credit and comments entered in formgrader are left as they are; a hand-graded
        exercise whose automatic score changed is flagged for review (``needs_manual_grade``), as
        ``nbgrader autograde`` flags it; the late penalty of a notebook with hand grades is ``rules``'
        on its final points, as nbgrader computes it. The student's names come from the roster where it has them."""
        def write():
            student = gb.update_or_create_student(result.student, **self.roster.get(result.student, {}))
            if student.first_name is None and student.last_name is None:
                account = rosters.account_name(result.student)
                if account:
                    student.first_name, student.last_name = account
            submission = gb.update_or_create_submission(self.assignment, result.student, timestamp=when)
            points = {c.grade_id: c.points for c in result.cells}
            for notebook in submission.notebooks:
                notebook.late_submission_penalty = (penalties or {}).get(notebook.name)
                for grade in notebook.grades:
                    key = exercise_id(self.notebooks, notebook.name, grade.name)
                    if key not in points:
                        continue  # not an exercise the grader scores: a person's to grade
                    auto = points[key] if result.status == GRADED else 0.0
                    changed = grade.auto_score is None or abs(float(grade.auto_score) - auto) > 1e-9
                    grade.auto_score = auto
                    if grade.manual_score is None:
                        grade.needs_manual_grade = False
                    elif changed:  # the hand grade was given for another automatic score: look again
                        grade.needs_manual_grade = True
                hand = [g for g in notebook.grades if g.manual_score is not None or g.extra_credit is not None]
                if hand and rules is not None and notebook.late_submission_penalty is not None:
                    final = sum((g.auto_score or 0.0) if g.manual_score is None else g.manual_score
                                for g in notebook.grades) + sum(g.extra_credit or 0.0 for g in hand)
                    _, again = rules.penalty(result.student, {notebook.name: final}, when)
                    notebook.late_submission_penalty = again[notebook.name]
            gb.db.commit()

        books.retry(gb, write)

    def enroll(self, gb) -> None:
        """The roster's students into the gradebook (names, emails), those without a submission too."""
        for student, fields in self.roster.items():
            books.retry(gb, lambda: gb.update_or_create_student(student, **fields))

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

    @staticmethod
    def environment(jupyter_env: dict[str, str], secret: str) -> dict[str, str]:
        """A worker's environment: private Jupyter folders, the course secret, and one thread for its
        own PyTorch and BLAS, like the kernels: the judge's tensors are small, and a second thread only
        waits on the first — with the kernel busy beside it, a1's references ran 25 times slower per
        call and a whole notebook took twice as long with two."""
        return {**os.environ, **jupyter_env, "AUTOGRADER_SECRET": secret, "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def reusable(self) -> bool:
        """Alive and between jobs: it can take the next one."""
        return self.alive() and self.ready

    @property
    def failure(self) -> str:
        """Why its last job gave no answer, as the end of "grading ..."."""
        return "did not finish in time" if self.timed_out else f"stopped with status {self.returncode()}"

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
        if self.alive() and self.ready:  # between jobs: end of input lets it stop its spare kernel
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        if not self.log.closed:
            self.log.close()


def _package_digest() -> str:
    """The checks that produce grades: a change in them invalidates recorded results."""
    h = hashlib.sha256()
    base = Path(__file__).resolve().parents[1]
    for path in sorted([*base.glob("*.py"), *base.glob("kernel/*.py"), *base.glob("suites/*.py"), *base.glob("grading/*.py")]):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


class LocalEngine:
    """Grade jobs in ``workers`` worker processes on this machine (the default: no services)."""

    def __init__(self, grader: ClassGrader, workers: int):
        self.grader = grader
        self.pool = ThreadPoolExecutor(max_workers=workers)
        grader.start_workers(workers)  # their imports overlap what the grader does next

    def results(self, jobs: list[Job]):
        """Start grading ``jobs`` now; the iterator yields each result as it is committed."""
        futures = [self.pool.submit(self.grader.grade_one, job) for job in jobs]
        return (future.result() for future in as_completed(futures))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.grader.stop_workers()


def save_release_cells(course: Course, assignment: str, db_url: str, cells: dict | None = None) -> bool:
    """The assignment's released notebooks recorded in the gradebook by nbgrader's own SaveCells, in
    this process; False (nothing written) when a release is missing or does not match the source's
    exercises and points (``cells``: notebook -> the source's graded cells, read when None)."""
    notebooks = course.notebooks(assignment)
    if cells is None:
        cells = {name: graded_cells(nbformat.read(course.solutions / assignment / f"{name}.ipynb", as_version=4))
                 for name in notebooks}
    releases = {}
    for name in notebooks:
        path = course.assignments / assignment / f"{name}.ipynb"
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError):
            return False
        if graded_cells(nb) != cells[name]:
            return False
        releases[name] = nb
    from nbgrader.preprocessors import SaveCells

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with books.opened(db_url) as gb:
            books.retry(gb, lambda: gb.update_or_create_assignment(assignment))
        for name, nb in releases.items():
            SaveCells().preprocess(nb, {"nbgrader": {"db_url": db_url, "assignment": assignment, "notebook": name}})
    return True


def grade(course: Course, assignment: str, submissions_dir: str | Path, out: str | Path, *,
          cell_timeout: float = DEFAULT_CELL_TIMEOUT, submission_timeout: float = DEFAULT_SUBMISSION_TIMEOUT,
          workers: int = 1, limits: Limits | None = None, regrade: bool = False,
          show_progress: bool = True, db_url: str | None = None, scheduler: str | None = None,
          students: list[str] | None = None) -> ClassReport:
    """Autograde every submission of ``assignment`` in ``submissions_dir`` into ``out``.

    Students already graded by an earlier (possibly killed) run with the same submission and the
    same settings keep their result; the rest are graded by ``workers`` local processes in
    parallel, or by the Dask cluster whose scheduler is at ``scheduler``. The gradebook is the
    SQLite file ``out/gradebook.db`` unless ``db_url`` names another database. ``students``: only
    these of the folder's students (nbgrader's Autograde grades one at a time, :mod:`.road`).
    """
    course.require(assignment)
    if workers < 1:
        raise UsageError("--workers must be 1 or more")
    if scheduler and workers != 1:
        raise UsageError("--workers and --scheduler: give one (the cluster's workers do the grading)")
    submissions_dir = Path(submissions_dir).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for grades and feedback")
    for protected in (course.solutions, course.assignments, submissions_dir):
        if out == protected or protected in out.parents:
            raise UsageError(f"--out {out} is inside {protected}; choose a folder of its own")
    submissions, skipped = find_submissions(submissions_dir, assignment)
    if students is not None:  # one grading road (road.Judge): the students nbgrader asked for
        submissions = [s for s in submissions if s.student in students]
        skipped = []
        if not submissions:
            raise UsageError(f"no submission of {assignment} by {', '.join(students)} in {submissions_dir}")
    rules = late.rules(course, assignment)  # the course's due date and nbgrader's penalty rule
    roster = rosters.read(course)  # students' names (c.Autograder.roster), checked before anything is written
    if db_url is not None:
        books.check(db_url)
    cluster = None
    if scheduler:
        from .cluster import DaskEngine

        cluster = DaskEngine(scheduler)
    out.mkdir(parents=True, exist_ok=True)

    try:
        grader = ClassGrader(course, assignment, out, cell_timeout, submission_timeout, limits, db_url, roster)
    except BaseException:
        if cluster:
            cluster.close()
        raise
    if cluster:
        cluster.grader = grader
        engine = cluster
    else:
        engine = LocalEngine(grader, min(workers, len(submissions)))
    try:
        return _grade_class(grader, engine, submissions, skipped, rules, regrade, show_progress)
    finally:
        engine.close()


def _grade_class(grader: ClassGrader, engine, submissions: list[Submission], skipped: list[str],
                 rules: late.Rules, regrade: bool, show_progress: bool) -> ClassReport:
    out, assignment = grader.out, grader.assignment
    results: dict[str, StudentResult] = {}
    resumed: set[str] = set()
    bad: list[str] = list(skipped)
    todo: list[Job] = []
    early_results = []
    for sub in submissions:
        job = grader.job(sub)
        early, problem = grader.precheck(sub, job)
        if problem:
            bad.append(problem)
            early_results.append(early)
            results[sub.student] = early
        elif not regrade and (kept := grader.recorded(job)) is not None:
            results[sub.student] = kept
            resumed.add(sub.student)
        else:
            todo.append(job)
    if todo and isinstance(engine, LocalEngine):  # a fault of this machine is nobody's 0 (the workers warm up meanwhile)
        from .execute import probe

        why = probe(KernelSite(assignment), grader.limits)
        if why:
            raise UsageError(f"grading kernels cannot start on this machine, so nothing was graded or recorded: {why}")
    elif todo:  # on a cluster: on every worker host
        engine.probe(assignment, grader.limits)
    grader.prepare()
    for early in early_results:
        early.save(out)

    subs = {sub.student: sub for sub in submissions}

    def settle_and_record(gb, result: StudentResult) -> None:
        penalties = grader.settle(result, subs[result.student], rules)
        grader.record(gb, result, subs[result.student].submitted_at, penalties, rules)

    bar = counter(total=len(submissions), initial=len(results), desc=f"grade {assignment}", unit="student",
                  enable=show_progress)
    try:
        with grader.gradebook() as gb:
            graded = engine.results(todo)
            books.retry(gb, lambda: gb.update_or_create_assignment(assignment, duedate=rules.due))
            grader.enroll(gb)
            for result in results.values():  # the kept and the unreadable, while the workers start
                settle_and_record(gb, result)
            for result in graded:
                results[result.student] = result
                settle_and_record(gb, result)  # as they come: the gradebook is done when the last one is
                bar.set_postfix_str(f"{result.student} {result.score:g}/{result.max_score:g}")
                bar.update(1)
            everything = load_all(out)
            hand = hand_grades(gb, {a: grader.course.notebooks(a) for a in {r.assignment for r in everything}
                                    if a in grader.course.assignment_ids()})
    finally:
        bar.close()
    now = [results[sub.student] for sub in submissions]
    grader.feedback(now, fresh={j.student for j in todo} | {s.student for s in submissions
                                                            if results[s.student].status != GRADED})

    columns: dict[str, list[str]] = {}
    for a in sorted({r.assignment for r in everything} | {assignment}, key=_course_order):
        if a == assignment:
            columns[a] = [gid for gid, _ in grader.exercises]
        else:
            columns[a] = [c.grade_id for c in next(r for r in everything if r.assignment == a).cells]
    by_key = {(r.assignment, r.student): r for r in everything}
    penalties = {key: hand_penalty(grader.course, by_key[key], grades, rules if key[0] == assignment else None)
                 for key, grades in hand.items() if key in by_key}
    write_grades_csv(out, everything, columns, hand, penalties)
    from . import formgrader

    pages.install_mathjax(out / "feedback")
    graded_subs = [s for s in submissions if results[s.student].status == GRADED]
    formgrader.prepare(out, grader.course, grader.db_url, assignment, {s.student: s.folder for s in graded_subs},
                       settings={"cell_timeout": grader.cell_timeout, "limits": asdict(grader.limits),
                                 "submission_timeout": grader.submission_timeout},
                       stamps={s.student: s.submitted_at for s in graded_subs})
    mine = {student: grades for (a, student), grades in hand.items() if a == assignment}
    final = {r.student: r.final_score(mine[r.student], penalties.get((assignment, r.student))) for r in now
             if r.student in mine}
    return ClassReport(assignment, out, now, grader.exercises, bad, resumed, mine, final)


def hand_grades(gb, notebooks: dict[str, list[str]]) -> dict[tuple[str, str], dict[str, HandGrade]]:
    """(assignment, student) -> exercise -> what a person entered in formgrader (a manual score, extra
    credit) and whether it is flagged for review, for the assignments in ``notebooks`` (id -> its
    notebooks): one query."""
    from nbgrader.api import Assignment, Grade, GradeCell, Notebook, SubmittedAssignment, SubmittedNotebook
    from sqlalchemy import or_

    if not notebooks:
        return {}
    rows = (gb.db.query(Assignment.name, SubmittedAssignment.student_id, Notebook.name, GradeCell.name,
                        Grade.manual_score, Grade.extra_credit, Grade.needs_manual_grade)
            .select_from(Grade)
            .join(SubmittedNotebook, Grade.notebook_id == SubmittedNotebook.id)
            .join(SubmittedAssignment, SubmittedNotebook.assignment_id == SubmittedAssignment.id)
            .join(Assignment, SubmittedAssignment.assignment_id == Assignment.id)
            .join(Notebook, SubmittedNotebook.notebook_id == Notebook.id)
            .join(GradeCell, Grade.cell_id == GradeCell.id)
            .filter(or_(Grade.manual_score.isnot(None), Grade.extra_credit.isnot(None)))
            .filter(Assignment.name.in_(sorted(notebooks)))
            .all())
    out: dict[tuple[str, str], dict[str, HandGrade]] = {}
    for a, student, nb, gid, manual, extra, review in rows:
        key = exercise_id(notebooks[a], nb, gid)
        out.setdefault((a, student), {})[key] = HandGrade(
            None if manual is None else float(manual), None if extra is None else float(extra),
            bool(review and manual is not None))
    return out


def hand_penalty(course: Course, result: StudentResult, grades: dict[str, HandGrade],
                 rules: "late.Rules | None" = None) -> float:
    """The late penalty of a hand-graded submission: nbgrader's rule on each notebook's final points
    (the hand grades and extra credit in), as ``nbgrader autograde`` computes it from the gradebook."""
    if result.seconds_late <= 0 or not result.submitted_at:
        return result.late_penalty
    rules = rules or late.rules(course, result.assignment)
    notebooks = course.notebooks(result.assignment)
    scores = {}
    for nb in notebooks:
        prefix = exercise_id(notebooks, nb, "")
        cells = [c for c in result.cells if c.grade_id.startswith(prefix)]
        scores[nb] = result.final_points(grades, cells)
    _, penalties = rules.penalty(result.student, scores, late.parse(result.submitted_at))
    return sum(p for p in penalties.values() if p)


def _course_order(assignment: str) -> tuple[int, str]:
    head = assignment.split("_")[0][1:]
    return (int(head) if head.isdigit() else 10**6, assignment)
