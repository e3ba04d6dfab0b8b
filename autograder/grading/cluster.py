"""Grading fanned out over a Dask distributed cluster: ``grade … --scheduler ADDRESS``.

Each student is one Dask task. The task carries everything the grading needs as data — the job,
the student's notebook bytes, the instructor's source notebooks, the course secret — so a worker
host needs no shared file system, only the course's package (the same checkout and environment
as the instructor's, which the task checks) and bubblewrap. On the worker the task hands the job
to the same long-lived sandboxing worker process a local run uses (:mod:`.worker` ``--serve``),
in a scratch folder of its own, and returns what that worker wrote: the result record, the graded
notebooks, the feedback pages and the log, as bytes.

The class grader (this machine) stays the only writer: it commits each answer into OUT as it
arrives — files first, the result record last — and records it in the gradebook, exactly as for a
local worker. A Dask worker that dies mid-task has its tasks run again elsewhere by the
scheduler; each student's future resolves once, so each student is committed once.
"""

from __future__ import annotations

import atexit
import queue
import shutil
import socket
import tempfile
import threading
import uuid
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..course import UsageError
from .results import ERROR, StudentResult, result_path
from .worker import Job, keep_exchange_files, zero_result

CONNECT_TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------------
# The instructor's side
# ---------------------------------------------------------------------------------------------

class DaskEngine:
    """Grade jobs on the cluster behind the scheduler at ``address``."""

    def __init__(self, address: str, timeout: float = CONNECT_TIMEOUT):
        """Connect, and check the workers grade with this checkout's code: a UsageError, before
        anything is written, when the cluster cannot grade."""
        try:
            from distributed import Client
        except ImportError:
            raise UsageError("--scheduler needs dask's distributed package: pip install '.[scale]'") from None
        self.grader = None  # the ClassGrader whose jobs these are, set by grade()
        self.address = address
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"--scheduler {address}: no Dask scheduler answered there ({first(exc)}); start "
                             "one with `dask scheduler` and workers with `dask worker ADDRESS`") from None
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (TimeoutError, OSError):
            self.client.close()
            raise UsageError(f"--scheduler {address}: the scheduler has no workers; start some with "
                             f"`dask worker {address} --nthreads 1`") from None
        from .autograde import _package_digest

        self.package = _package_digest()
        found = self.client.run(package_digest)
        differ = sorted(addr for addr, digest in found.items() if digest != self.package)
        if differ:
            self.client.close()
            raise UsageError(f"--scheduler {address}: {len(differ)} of {len(found)} workers ({', '.join(differ[:3])}) "
                             "grade with different code than this checkout; update their course checkout and restart them")

    def probe(self, assignment: str, limits) -> None:
        """Can a grading kernel start on every worker? A UsageError naming the workers that cannot,
        and why, before anyone is graded: a fault of a grading host is nobody's 0."""
        found = self.client.run(probe_here, assignment, asdict(limits))
        failing = sorted((addr, why) for addr, why in found.items() if why)
        if failing:
            addr, why = failing[0]
            raise UsageError(f"grading kernels cannot start on {len(failing)} of {len(found)} Dask workers "
                             f"({', '.join(a for a, _ in failing[:3])}), so nothing was graded or recorded: {why}")

    def results(self, jobs: list[Job]) -> Iterator[StudentResult]:
        """Submit ``jobs`` now; the iterator yields each result as it is committed."""
        g = self.grader
        sources = {name: Path(path).read_bytes() for name, path in g.source_paths.items()}
        futures = {}
        for job in jobs:
            files = {}
            for name in job.notebooks:
                path = Path(job.folder) / f"{name}.ipynb"
                files[name] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
            payload = {"job": asdict(job), "files": files, "sources": sources, "secret": g.secret.decode(),
                       "package": self.package}
            key = f"grade-{job.assignment}-{job.student}-{uuid.uuid4().hex[:8]}"
            futures[self.client.submit(grade_task, payload, key=key, pure=False)] = job
        return self._collect(futures)

    def _collect(self, futures: dict) -> Iterator[StudentResult]:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        g = self.grader
        for future in as_completed(list(futures), loop=self.client.loop):
            job = futures.pop(future)
            try:
                answer = future.result()
            except KilledWorker as exc:
                result = zero_result(job, ERROR, f"grading stopped the Dask workers it ran on ({first(exc)})")
                result.save(g.out)
            except Exception as exc:  # noqa: BLE001 - a worker-side failure: this student's row only
                result = zero_result(job, ERROR, f"grading failed on the cluster: {type(exc).__name__}: {first(exc)}")
                result.save(g.out)
            else:
                result = commit(g.out, job, answer)
            future.release()
            yield result

    def close(self) -> None:
        self.client.close()


def commit(out: Path, job: Job, answer: dict) -> StudentResult:
    """Write a task's files into OUT (only where this student's files belong), then its result
    record — the commit point — or an error row saying why there is none."""
    student, assignment = job.student, job.assignment
    mine = (f"feedback/{student}/{assignment}/", f"nbgrader/autograded/{student}/{assignment}/",
            f"logs/{assignment}/{student}.log")
    record = f"results/{assignment}/{student}.json"
    for folder in mine[:2]:
        shutil.rmtree(out / folder, ignore_errors=True)
    raw = None
    for rel, data in answer.get("files", {}).items():
        parts = PurePosixPath(rel).parts
        if rel == record:
            raw = data
            continue
        if ".." in parts or not any(rel.startswith(m) for m in mine):
            continue
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if raw is not None:
        tmp = result_path(out, assignment, student).with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(raw)
        try:
            result = StudentResult.load(tmp)
        except (ValueError, TypeError, KeyError):
            result = None
        finally:
            tmp.unlink()
        if result is not None and result.digest == job.digest:
            # nbgrader's timestamp and exchange secret, read here from the submission (they never travel)
            keep_exchange_files(Path(job.folder), [out / mine[1], out / mine[0]])
            result.save(out)
            return result
    why = answer.get("why") or "it wrote no result"
    result = zero_result(job, ERROR, f"grading {why} on {answer.get('host', 'a Dask worker')} "
                                     f"(log: {out / mine[2]})")
    result.save(out)
    return result


def first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The worker's side: runs inside a Dask worker process
# ---------------------------------------------------------------------------------------------

def package_digest() -> str:
    from .autograde import _package_digest

    return _package_digest()


_POOL: "dict[tuple[str, str], queue.Queue]" = {}
_POOL_LOCK = threading.Lock()
_BASE: list[Path] = []
_SPAWN: "queue.Queue" = queue.Queue()


def _spawner() -> None:
    """Starts the grading worker processes from one thread that lives as long as the Dask worker:
    a worker process dies with the thread that started it (Linux's parent-death signal), and Dask's
    task threads may come and go."""
    while True:
        make, box = _SPAWN.get()
        try:
            box.put((True, make()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the task that asked
            box.put((False, exc))


def _spawn(make):
    with _POOL_LOCK:
        if not _BASE:
            _BASE.append(Path(tempfile.mkdtemp(prefix="ag-dask-")))
            threading.Thread(target=_spawner, name="autograder-spawner", daemon=True).start()
            atexit.register(_clean_up)
    box: queue.Queue = queue.Queue()
    _SPAWN.put((make, box))
    ok, value = box.get()
    if not ok:
        raise value
    return value


def _clean_up() -> None:
    """A Dask worker shutting down stops its grading workers and removes its scratch folder."""
    for idle in _POOL.values():
        while not idle.empty():
            worker = idle.get_nowait()
            if worker is not None:
                worker.stop()
    for base in _BASE:
        shutil.rmtree(base, ignore_errors=True)


def probe_here(assignment: str, limits: dict) -> str | None:
    """On a Dask worker: why no grading kernel can start on this host (:func:`execute.probe`), or None."""
    from .execute import probe
    from .sandbox import KernelSite, Limits

    return probe(KernelSite(assignment), Limits(**limits))


def grade_task(payload: dict) -> dict:
    """Grade one student on this Dask worker; return the files the grading worker wrote."""
    from .autograde import Worker
    from .nbgrader_cli import jupyter_home

    if package_digest() != payload["package"]:
        raise RuntimeError(f"the autograder on {socket.gethostname()} differs from the instructor's; "
                           "update the course checkout there and restart its Dask workers")
    job = Job(**payload["job"])
    key = (job.assignment, payload["secret"])

    def make() -> Worker:
        base = _BASE[0]
        env = Worker.environment(jupyter_home(base / "home"), payload["secret"])
        return Worker(base, env, base / "logs" / f"_worker_{uuid.uuid4().hex[:8]}.log", job.assignment)

    with _POOL_LOCK:
        idle = _POOL.setdefault(key, queue.Queue())
    try:
        worker = idle.get_nowait()
    except queue.Empty:
        worker = None
    if worker is None or not worker.alive():
        worker = _spawn(make)

    scratch = Path(tempfile.mkdtemp(prefix="job-", dir=_BASE[0]))
    try:
        folder, src, out = scratch / "submission", scratch / "source", scratch / "out"
        for path in (folder, src, out):
            path.mkdir()
        for name, data in payload["files"].items():
            if data is not None:
                (folder / f"{name}.ipynb").write_bytes(data)
        for name, data in payload["sources"].items():
            (src / f"{name}.ipynb").write_bytes(data)
        job.folder, job.out = str(folder), str(out)
        job.sources = {name: str(src / f"{name}.ipynb") for name in job.notebooks}
        job_path = scratch / "job.json"
        job.save(job_path)
        try:
            worker.run(job_path, job.budget + 120)
        finally:
            if worker.reusable:
                idle.put(worker)
            else:
                worker.stop()
        why = None if worker.ready else worker.failure
        files = {}
        for path in out.rglob("*"):
            if path.is_file() and not path.is_symlink():
                files[path.relative_to(out).as_posix()] = path.read_bytes()
        return {"files": files, "why": why, "host": socket.gethostname()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
