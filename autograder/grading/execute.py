"""Running one assembled notebook, cell by cell, in a sandboxed kernel that may misbehave.

Every code cell gets a time limit and an output cap. A cell past its time is interrupted; a cell
that ignores the interrupt, prints past the cap, or kills its kernel (``os._exit``, a segfault, the
memory cap) has its kernel replaced: the new kernel re-runs the cells that had defined things
(without their outputs) and the notebook goes on from the next cell. Whatever a cell does, it ends
as a :class:`CellRun` with a status and, when it failed, one line saying why.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from .sandbox import KernelSite, Limits, kernel_argv, kernel_env, sweep_cgroups

OK = "ok"              # ran to the end without an error
ERROR = "error"        # raised (the error output is in the cell)
TIMEOUT = "timeout"    # past the time limit
OUTPUT = "output"      # printed past the cap
DIED = "died"          # the kernel died while running it
SKIPPED = "skipped"    # never ran: the submission's time ran out or the kernel could not be restarted

GRACE_S = 5.0          # how long an interrupted cell has to stop before its kernel is replaced
MAX_RESTARTS = 4


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

    def __init__(self, scratch: Path, limits: Limits, site: KernelSite, startup_timeout: float = 60.0):
        from jupyter_client import KernelManager
        from jupyter_client.kernelspec import KernelSpecManager

        self.scratch = scratch
        self.limits = limits
        specs = scratch / ".kernelspec"
        spec_dir = specs / "sandboxed"
        spec_dir.mkdir(parents=True, exist_ok=True)
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": kernel_argv(scratch, limits, site), "display_name": "sandboxed", "language": "python",
            "interrupt_mode": "message", "env": {}}))
        self.km = KernelManager(kernel_name="sandboxed", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(specs)]),
                                transport="ipc", ip=str(scratch / "kernel-ipc"),
                                connection_file=str(scratch / "kernel-connection.json"))
        self.km.start_kernel(env=kernel_env(scratch, site), cwd=str(scratch), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError as exc:
            why = self.death() or str(exc)
            self.shutdown()
            raise KernelDied(f"the kernel did not start: {why}") from None

    def alive(self) -> bool:
        return self.km.is_alive()

    def death(self) -> str | None:
        """Why the kernel is gone, from its exit status, or None while it runs."""
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

    def execute(self, index: int, code: str, timeout: float) -> CellRun:
        """Run one cell; never raises for what the cell does (KernelDied is reported as DIED)."""
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


def _error_reason(error: NotebookNode, limits: Limits) -> str:
    ename, evalue = error.get("ename", "Error"), str(error.get("evalue", "")).strip()
    if ename == "CheckFailure" and evalue:  # the check's own message names the exercise and the call
        return evalue
    if ename == "MemoryError":
        return f"MemoryError: the kernel reached its memory cap ({limits.memory_mb} MiB)"
    if ename == "OSError" and "File too large" in evalue:
        return f"a file grew past the {limits.file_mb} MiB cap: {evalue}"
    if ename == "BlockingIOError" and "Resource temporarily unavailable" in evalue:
        return f"the process cap ({limits.processes}) stopped a fork or a thread: {evalue}"
    return f"{ename}: {evalue}" if evalue else ename


class KernelSession:
    """The kernel of one notebook, kept alive across lost kernels: a cell that kills its kernel (or
    ignores an interrupt) costs that cell, and the next one gets a fresh kernel in which the cells
    that had defined things run again, silently. ``deadline`` (monotonic seconds) bounds everything."""

    def __init__(self, scratch: Path, limits: Limits, site: KernelSite, cell_timeout: float, deadline: float):
        self.scratch, self.limits, self.site = scratch, limits, site
        self.cell_timeout, self.deadline = cell_timeout, deadline
        self.current: SandboxedKernel | None = None
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

    def run(self, index: int, code: str, replayable: bool = True) -> CellRun:
        """Run one cell (never raises for what it does)."""
        left = self.left()
        if left <= 1:
            return CellRun(index, SKIPPED, 0.0, "not run: the submission's time ran out")
        try:
            kernel = self.kernel()
        except KernelDied as exc:
            return CellRun(index, SKIPPED, 0.0, f"not run: {exc}")
        run = kernel.execute(index, code, min(self.cell_timeout, max(1.0, left)))
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
