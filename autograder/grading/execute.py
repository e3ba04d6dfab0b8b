"""Running one assembled notebook, cell by cell, in a sandboxed kernel that may misbehave.

Every code cell gets a time limit and an output cap. A cell past its time is interrupted; a cell
that ignores the interrupt, prints past the cap, or kills its kernel (``os._exit``, a segfault, the
memory cap) has its kernel replaced: the new kernel re-runs the cells that had defined things
(without their outputs) and the notebook goes on from the next cell. Whatever a cell does, it ends
as a :class:`CellRun` with a status and, when it failed, one line saying why.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from .sandbox import KernelSite, Limits, ipc_folder, kernel_argv, kernel_env, sweep_cgroups, tree_usage, work_folder

OK = "ok"              # ran to the end without an error
ERROR = "error"        # raised (the error output is in the cell)
TIMEOUT = "timeout"    # past the time limit
OUTPUT = "output"      # printed past the cap
DIED = "died"          # the kernel died while running it
SKIPPED = "skipped"    # never ran: the submission's time ran out or the kernel could not be restarted

GRACE_S = 5.0          # how long an interrupted cell has to stop before its kernel is replaced
MAX_RESTARTS = 4
ADDED_S = 10.0         # the kernel time the cells a student added share, all together (see Budget)


@dataclass
class CellRun:
    index: int
    status: str
    seconds: float = 0.0
    reason: str | None = None
    outputs: list = field(default_factory=list)


class KernelDied(Exception):
    pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class SandboxedKernel:
    """One IPython kernel in its sandbox, talked to over IPC sockets in the scratch folder."""

    def __init__(self, scratch: Path, limits: Limits, site: KernelSite, startup_timeout: float = 60.0,
                 stderr: Path | None = None, wait: bool = True):
        """Start the kernel's process; with ``wait`` (the default) also connect and wait until it
        answers (:meth:`ready`). Without it the kernel boots while the caller does other work."""
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        self.scratch = scratch
        self.limits = limits
        self.intruded: str | None = None
        self._looked = 0.0
        work_folder(scratch).mkdir(exist_ok=True)
        shutil.rmtree(ipc_folder(scratch), ignore_errors=True)  # a lost kernel's sockets, or what it wrote there
        ipc_folder(scratch).mkdir()
        specs = scratch / ".kernelspec"
        spec_dir = specs / "sandboxed"
        spec_dir.mkdir(parents=True, exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": kernel_argv(scratch, limits, site), "display_name": "sandboxed", "language": "python",
            "interrupt_mode": "message", "env": {}}))
        self.km = KernelManager(kernel_name="sandboxed", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]),
                                transport="ipc", ip=str(ipc_folder(scratch) / "k"),
                                connection_file=str(scratch / "kernel-connection.json"))
        errors = stderr.open("wb") if stderr is not None else subprocess.DEVNULL
        try:
            self.km.start_kernel(env=kernel_env(scratch, site), cwd=str(scratch), stdout=subprocess.DEVNULL,
                                 stderr=errors, stdin=subprocess.DEVNULL)
        finally:
            if stderr is not None:
                errors.close()
        self.startup_timeout = startup_timeout
        self.kc = None
        if wait:
            self.ready()

    def ready(self) -> "SandboxedKernel":
        """Connect to the kernel and wait until it answers; KernelDied if it never does."""
        if self.kc is not None:
            return self
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=self.startup_timeout)
        except RuntimeError as exc:
            why = self.death() or str(exc)
            self.shutdown()
            raise KernelDied(f"the kernel did not start: {why}") from None
        return self

    def alive(self) -> bool:
        if self.km.is_alive() and self._intruder():
            self.shutdown()
        return self.km.is_alive()

    def _intruder(self) -> bool:
        """Whether the kernel wrote a file beside its sockets (``scratch/ipc``, the one folder on the
        host's disk it can write to besides its capped tmpfs folders): looked at twice a second."""
        now = time.monotonic()
        if self.intruded is None and now - self._looked > 0.5:
            self._looked = now
            try:
                with os.scandir(ipc_folder(self.scratch)) as entries:
                    bad = [e.name for e in entries if not stat.S_ISSOCK(e.stat(follow_symlinks=False).st_mode)]
            except OSError:
                bad = []
            if bad:
                self.intruded = (f"the kernel wrote {bad[0]!r} into the grader's socket folder; files go in the "
                                 f"working folder or /tmp ({self.limits.space_mb} MiB each)")
        return self.intruded is not None

    def pid(self) -> int | None:
        process = getattr(self.km.provisioner, "process", None)
        return getattr(process, "pid", None)

    def usage(self) -> tuple[float, float] | None:
        """(CPU seconds, run-queue seconds) of the kernel's whole process tree so far, measured from
        outside (:func:`.sandbox.tree_usage`); None where it cannot be measured."""
        pid = self.pid()
        return tree_usage(pid) if pid is not None else None

    def death(self) -> str | None:
        """Why the kernel is gone, from its exit status, or None while it runs."""
        if self.intruded:
            return self.intruded
        process = getattr(self.km.provisioner, "process", None)
        code = process.poll() if process is not None else None
        if code is None:
            return None if self.alive() else "the kernel stopped"
        if code < 0 or code > 128:  # bubblewrap reports a child's signal as 128 + N
            number = -code if code < 0 else code - 128
            name = _signal_name(number)
            detail = {"SIGSEGV": "a segmentation fault", "SIGKILL": "killed (out of memory, or a kill signal)",
                      "SIGXCPU": f"the CPU time cap ({self.limits.cpu_s} s)", "SIGABRT": "aborted"}.get(name, name)
            return f"the kernel died: {detail} ({name})"
        return f"the kernel exited with status {code} (os._exit, exit() or a crash in compiled code)"

    def execute(self, index: int, code: str, timeout: float, meter: "Meter | None" = None) -> CellRun:
        """Run one cell; never raises for what the cell does (KernelDied is reported as DIED).
        ``meter``: the kernel time the cell may take (:class:`Meter`), on top of ``timeout``."""
        start = time.monotonic()
        cap = self.limits.output_kb * 1024
        msg_id = self.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
        outputs: list[NotebookNode] = []
        printed = 0
        status, reason = None, None
        stop_at = None  # when an interrupted cell must have stopped by
        while True:
            now = time.monotonic()
            if stop_at is None and now - start > timeout:
                status, reason = TIMEOUT, f"timed out: the cell ran past the {timeout:g} s limit per cell"
                stop_at = now + GRACE_S
                self._interrupt()
            elif stop_at is None and meter is not None and (why := meter.over()):
                status, reason = TIMEOUT, why
                stop_at = now + GRACE_S
                self._interrupt()
            if stop_at is not None and now > stop_at:
                self.shutdown()
                reason = (reason or "") + " and ignored the interrupt, so its kernel was replaced"
                outputs.append(nbformat.v4.new_output("error", ename="Stopped", evalue=reason, traceback=[reason]))
                return CellRun(index, status, now - start, reason, outputs)
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                if not self.alive():
                    why = self.death() or "the kernel died"
                    outputs.append(nbformat.v4.new_output("error", ename="KernelDied", evalue=why, traceback=[why]))
                    return CellRun(index, DIED, time.monotonic() - start, why, outputs)
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                break
            if kind == "clear_output":
                outputs.clear()
            elif kind in ("stream", "display_data", "execute_result", "error"):
                size = len(content.get("text", "")) if kind == "stream" else len(json.dumps(content))
                printed += size
                if printed > cap:
                    if status is None:
                        status = OUTPUT
                        reason = (f"output cap: the cell printed more than {self.limits.output_kb} KiB, "
                                  "so it was stopped and its output cut")
                        stop_at = time.monotonic() + GRACE_S
                        self._interrupt()
                    continue
                out = nbformat.v4.output_from_msg(msg)
                if kind == "stream" and outputs and outputs[-1].get("output_type") == "stream" \
                        and outputs[-1].get("name") == out.get("name"):
                    outputs[-1]["text"] += out["text"]
                else:
                    outputs.append(out)
        seconds = time.monotonic() - start
        if status is not None:
            outputs.append(nbformat.v4.new_output("error", ename="Stopped", evalue=reason, traceback=[reason]))
            return CellRun(index, status, seconds, reason, outputs)
        error = next((o for o in outputs if o.get("output_type") == "error"), None)
        if error is not None:
            return CellRun(index, ERROR, seconds, _error_reason(error, self.limits), outputs)
        return CellRun(index, OK, seconds, None, outputs)

    def _interrupt(self) -> None:
        try:
            self.km.interrupt_kernel()
        except Exception:  # a kernel that is already gone cannot be interrupted
            pass

    def shutdown(self) -> None:
        try:
            if self.kc is not None:
                self.kc.stop_channels()
        except Exception:
            pass
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:
            pass
        try:
            self.km.cleanup_resources()
        except Exception:
            pass


class Meter:
    """Limits on one stretch of a kernel's work, measured from outside its sandbox, whatever else
    the grading machine is doing (:func:`.sandbox.tree_usage`):

    * ``cpu_s``: the CPU seconds its whole process tree may use from now on (every thread and child
      process counts: the work done, however it is spread);
    * ``idle_s`` (default ``cpu_s``): the seconds it may spend neither running nor waiting for a CPU
      (asleep, blocked: a hang). Time spent waiting for a CPU that other work holds counts against
      neither, so a loaded machine stops no honest run; a machine whose kernel keeps no run-queue
      figures counts no idle time (the caller's wall-clock backstop remains).

    With ``together``, the CPU and idle seconds share one allowance of ``cpu_s`` (wall-clock seconds
    where there are no run-queue figures). Where the tree cannot be measured at all (no ``/proc``),
    wall-clock seconds stand in for CPU seconds."""

    POLL_S = 0.25

    def __init__(self, kernel: SandboxedKernel, cpu_s: float, idle_s: float | None = None, together: bool = False):
        self.kernel, self.cpu_s, self.together = kernel, cpu_s, together
        self.idle_s = cpu_s if idle_s is None else idle_s
        self.started = self._at = time.monotonic()
        self.first = self.last = kernel.usage()
        self.queued = bool(self.first and self.first[1] > 0)  # the kernel keeps run-queue figures
        self.cpu = self.idle = 0.0
        self._next = 0.0

    def read(self) -> None:
        """Take a reading now (:meth:`over` does, at most every POLL_S seconds)."""
        now = time.monotonic()
        usage = self.kernel.usage() if self.first is not None else None
        if usage is None:
            self.cpu = now - self.started if self.first is None else self.cpu  # no /proc: wall time
        else:
            cpu, wait = max(0.0, usage[0] - self.last[0]), max(0.0, usage[1] - self.last[1])
            if self.queued:
                self.idle += max(0.0, (now - self._at) - cpu - wait)
            self.cpu = max(self.cpu, usage[0] - self.first[0])
            self.last = usage
        self._at = now

    def charged(self) -> float:
        if self.together and not self.queued:  # asleep cannot be told from waiting: the wall clock counts
            return max(self.cpu, self._at - self.started)
        return self.cpu + self.idle if self.together else self.cpu

    def over(self) -> str | None:
        """Why the work must stop now, or None."""
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + self.POLL_S
        self.read()
        if self.together and self.charged() > self.cpu_s:
            return f"it used the {self.cpu_s:g} s of kernel time it had (computing or asleep)"
        if not self.together and self.cpu > self.cpu_s:
            return f"it used more than its {self.cpu_s:g} s CPU limit"
        if not self.together and self.idle > self.idle_s:
            return (f"it neither computed nor waited for a CPU for {self.idle_s:g} s (asleep, or waiting for "
                    "something that never came)")
        return None


def _error_reason(error: NotebookNode, limits: Limits) -> str:
    ename, evalue = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    if ename == "CheckFailure" and evalue:  # the check's own message names the exercise and the call
        return evalue
    if ename == "MemoryError":
        return f"MemoryError: the kernel reached its memory cap ({limits.memory_mb} MiB)"
    if ename == "OSError" and "File too large" in evalue:
        return f"a file grew past the {limits.file_mb} MiB cap: {evalue}"
    if ename == "OSError" and "No space left" in evalue:
        return (f"the kernel's files reached their cap ({limits.space_mb} MiB in /tmp, the same in the working "
                f"folder): {evalue}")
    if ename == "BlockingIOError" and "Resource temporarily unavailable" in evalue:
        return f"the process cap ({limits.processes}) stopped a fork or a thread: {evalue}"
    return f"{ename}: {evalue}" if evalue else ename


class Budget:
    """Kernel time that several cells share (the cells a student added: :data:`ADDED_S`), counted
    as a :class:`Meter` with ``together`` counts it: computing or asleep, never waiting for a CPU.
    Once it is spent, each further cell still gets ``after`` seconds (a helper's ``def`` takes
    none), until ``seconds`` more are spent; then they are not run."""

    def __init__(self, seconds: float = ADDED_S, after: float = 1.0):
        self.seconds, self.after, self.left = seconds, after, seconds
        self.noted = False  # the feedback has said that the rest were not run

    def allowance(self) -> float:
        if self.left >= self.after:
            return self.left
        return self.after if self.left > -self.seconds else 0.0

    def explain(self) -> str:
        return (f"the cells you added share {self.seconds:g} s of kernel time (computing or asleep), then "
                f"{self.after:g} s each, and they had used it")


class KernelSession:
    """The kernel of one notebook, kept alive across lost kernels: a cell that kills its kernel (or
    ignores an interrupt) costs that cell, and the next one gets a fresh kernel in which the cells
    that had defined things run again, silently. ``deadline`` (monotonic seconds) bounds everything."""

    def __init__(self, scratch: Path, limits: Limits, site: KernelSite, cell_timeout: float, deadline: float,
                 spare: SandboxedKernel | None = None):
        """``spare``: a kernel already started in ``scratch`` (not yet waited for), for the first cell."""
        self.scratch, self.limits, self.site = scratch, limits, site
        self.cell_timeout, self.deadline = cell_timeout, deadline
        self.current: SandboxedKernel | None = None
        self.spare = spare
        self.started = 0
        self.defined: list[str] = []  # cells that ran OK and define things, for a replacement kernel
        self.broken: str | None = None  # why no kernel can be had any more

    def kernel(self) -> SandboxedKernel:
        """A live kernel, started (and brought up to date) if needed; KernelDied if none can be had."""
        if self.current is not None and self.current.alive():
            return self.current
        if self.current is not None:
            self.current.shutdown()
            self.current = None
        if self.broken:
            raise KernelDied(self.broken)
        if self.started > MAX_RESTARTS:
            self.broken = f"the kernel was lost {self.started} times"
            raise KernelDied(self.broken)
        self.started += 1
        try:
            spare, self.spare, kernel = self.spare, None, None
            if spare is not None:
                try:
                    kernel = spare.ready()
                except KernelDied:  # the kernel started ahead died waiting (not this notebook's doing)
                    kernel = None
            if kernel is None:
                kernel = SandboxedKernel(self.scratch, self.limits, self.site)
            for earlier in self.defined:
                if kernel.execute(-1, earlier, self.cell_timeout).status == DIED:
                    kernel.shutdown()
                    raise KernelDied("the kernel died again while re-running the earlier cells")
        except KernelDied as exc:
            self.broken = str(exc)
            raise
        self.current = kernel
        return kernel

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, index: int, code: str, replayable: bool = True, budget: Budget | None = None) -> CellRun:
        """Run one cell (never raises for what it does); ``budget``: the kernel time it shares."""
        left = self.left()
        if left <= 1:
            return CellRun(index, SKIPPED, 0.0, "not run: the submission's time ran out")
        if budget is not None and budget.allowance() <= 0:
            return CellRun(index, SKIPPED, 0.0, f"not run: {budget.explain()}")
        try:
            kernel = self.kernel()
        except KernelDied as exc:
            return CellRun(index, SKIPPED, 0.0, f"not run: {exc}")
        meter = Meter(kernel, budget.allowance(), together=True) if budget is not None else None
        run = kernel.execute(index, code, min(self.cell_timeout, max(1.0, left)), meter)
        if meter is not None:
            meter.read()
            budget.left -= meter.charged()
            if run.status == TIMEOUT and run.reason and run.reason.startswith("it used"):
                run.reason = f"stopped: {budget.explain()}"
                for out in run.outputs:
                    if out.get("ename") == "Stopped":
                        out["evalue"], out["traceback"] = run.reason, [run.reason]
        if run.status == OK and replayable:
            self.defined.append(code)
        if not kernel.alive():
            self.lose()
        return run

    def lose(self) -> None:
        """Drop the current kernel (dead, or not to be trusted any more); the next use starts one."""
        if self.current is not None:
            self.current.shutdown()
            self.current = None

    def close(self) -> None:
        self.lose()
        if self.spare is not None:  # never used: the notebook ran no code
            self.spare.shutdown()
            self.spare = None
        sweep_cgroups()


def run_cells(cells: list[tuple[int, str, bool]], scratch: Path, limits: Limits, cell_timeout: float,
              budget: float, site: KernelSite | None = None) -> list[CellRun]:
    """Run ``cells`` ((index, code, replayable)) in order in a sandboxed kernel under ``scratch``.

    ``replayable`` cells (everything but the tests) are re-run, silently, in a replacement kernel so
    that later cells find what they defined. ``budget`` bounds the whole notebook's seconds.
    """
    session = KernelSession(scratch, limits, site or KernelSite(None), cell_timeout, time.monotonic() + budget)
    try:
        return [session.run(index, code, replayable) for index, code, replayable in cells]
    finally:
        session.close()


def probe(site: KernelSite, limits: Limits) -> str | None:
    """Why no grading kernel can start here, in one line (what the kernel's start printed last),
    or None when one starts and runs a cell: a class is graded only where kernels start, since a
    fault of the grading machine must never be recorded as every student's 0."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="ag-probe-"))
    log = scratch / "kernel-stderr.txt"
    try:
        try:
            kernel = SandboxedKernel(scratch, limits, site, stderr=log)
        except KernelDied as exc:
            said = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
            return f"the kernel did not start: {said[-1][:300]}" if said else str(exc)
        try:
            run = kernel.execute(0, "import sys", 60.0)
        finally:
            kernel.shutdown()
        return None if run.status == OK else f"a kernel started but could not run a cell: {run.reason}"
    except Exception as exc:  # noqa: BLE001 - jupyter_client itself failed: say how, in one line
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
