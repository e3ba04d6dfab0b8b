"""The judge: grades a notebook's exercises from outside the student's process.

The student's kernel has run the notebook's code (:mod:`.execute`). For each test cell, the judge
opens a channel to the kernel's agent (:mod:`autograder.agent`) and runs the instructor's test
code *here*, in the judge's process, with each name the test uses — ``pad2d``, ``LeNet5`` — bound
to a proxy (:class:`autograder.student.RemoteName`). A check calling ``pad2d(image, 2, "zero")``
sends the arguments to the kernel as data; the kernel calls the student's function and sends the
result back as data (:mod:`autograder.protocol`); the check compares it with the PyTorch
reference computed in this process, on the GPU when there is one.

So whatever the student's code does to its own process — monkeypatching numpy, torch, IPython,
the builtins or the course's checks, walking frames, installing hooks, returning objects that
lie — it can only change the data that comes back, and wrong data fails. The hidden sweeps are
drawn here, from the course secret (:mod:`autograder.secret`); their inputs go to the kernel, the
expected values never do.

Each exercise has its time limit (the cell timeout): past it the kernel is interrupted; a kernel
that ignores the interrupt, dies, or breaks the protocol costs that exercise, and the next one
gets a fresh kernel in which the notebook's earlier cells run again (:class:`.execute.KernelSession`).
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import os
import queue
import select
import socket
import struct
import symtable
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..kernel import checks, protocol, student
from ..kernel.checks import CheckFailure
from ..kernel.student import KernelLost, NotData, RemoteName, RemoteObject, StudentError, TimedOut
from .assemble import split_hidden
from .execute import GRACE_S, KernelDied, KernelSession, Meter

AGENT_START_S = 60.0  # how long the agent may take to connect (a cold kernel imports numpy first)
WATCH_EVERY_S = 0.05  # the longest the judge reads the socket or the kernel's output without a look at its clock


class AgentChannel:
    """The judge's end of one conversation with a kernel's agent (one test cell's worth)."""

    def __init__(self, session: KernelSession, limits: protocol.Limits = protocol.FROM_KERNEL):
        self.session = session
        self.limits = limits
        self.conn: socket.socket | None = None
        self.kernel = None
        self.msg_id: str | None = None
        self.ended = False  # the agent's cell finished (it said goodbye, or failed to start)
        self.deadline = float("inf")
        self.rid = 0
        self.handles: list[int] = []
        self.printed = 0
        self.output: list[str] = []  # what the student's code printed while being judged (capped)
        self.error: str | None = None  # the agent cell's own error, if it failed to start
        self.stop_reason: str | None = None
        self.metered: list[str] = []  # "train_lenet used 23.4 s of its 60 s CPU limit", for the notes

    # -- opening and closing ---------------------------------------------------------------------

    def open(self) -> None:
        """Start the agent in the kernel (a fresh kernel if the last one was lost) and connect.

        Only the kernel's own process may answer. The socket lies in the kernel's scratch folder,
        where the kernel's children (and, without bubblewrap, any process of the grading user) can
        reach it too; a nonce handed to the agent would not tell them apart, since the code in the
        kernel reads whatever the agent reads. What cannot be forged is who connected: the peer's
        pid from the kernel (``SO_PEERCRED``). A connection from any other process — a child the
        student's code forked, something left over from an earlier kernel or another submission —
        is closed unanswered and the judge goes on waiting for the agent; the first connection
        from the kernel's process is the only one accepted (the listening socket is closed and
        removed right after it). Code in the kernel's own process can still take the agent's place
        (it can rewrite the agent anyway): that changes only data, which the judge checks.
        """
        try:
            self.kernel = self.session.kernel()
        except KernelDied as exc:
            raise KernelLost(str(exc)) from None
        path = self.session.scratch / "j.sock"
        path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(path))
            listener.listen(8)
            listener.setblocking(False)
            code = f"__import__('autograder.kernel.agent', fromlist=['serve']).serve({str(path)!r})"
            self.msg_id = self.kernel.kc.execute(code, store_history=False, allow_stdin=False, stop_on_error=False)
            self.ended = False
            give_up = time.monotonic() + AGENT_START_S
            while True:
                ready, _, _ = select.select([listener], [], [], WATCH_EVERY_S)
                if ready and self._accept(listener):
                    return
                self._pump()
                if self.ended or not self.kernel.alive() or time.monotonic() > give_up:
                    why = (self.error or self.kernel.death() or "it did not connect in time")
                    self.session.lose()
                    raise KernelLost(f"the grader could not reach your kernel: {why}")
        finally:
            listener.close()
            path.unlink(missing_ok=True)

    def _accept(self, listener: socket.socket) -> bool:
        """Take one pending connection: True when it is the kernel's, which becomes the channel."""
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return False
        expected = self._kernel_pid()
        peer = peer_pid(conn)
        if peer is not None and expected is not None and peer != expected:
            conn.close()  # a forked child, a leftover process, another student's: never answered
            self.refused += 1
            return False
        conn.setblocking(False)
        self.conn = conn
        return True

    refused = 0  # connections closed because they did not come from the kernel's process
    _pid: tuple = (None, None)  # (the kernel object, its process id)

    def _kernel_pid(self) -> int | None:
        """The process id of the kernel the judge started, as this process sees it (None: unknown)."""
        if self._pid[0] is not self.kernel:
            process = getattr(self.kernel.km.provisioner, "process", None)
            self._pid = (self.kernel, kernel_process(process.pid) if process is not None else None)
        return self._pid[1]

    def close(self) -> None:
        """Say goodbye and wait for the agent's cell to finish, so the notebook's next cell can run."""
        if self.conn is None:
            return
        try:
            self.conn.setblocking(True)
            self.conn.settimeout(2.0)
            self.conn.sendall(protocol.frame({"op": "bye"}, [], 0))
        except OSError:
            pass
        finally:
            self.conn.close()
            self.conn = None
        stop = time.monotonic() + GRACE_S
        while not self.ended and time.monotonic() < stop and self.kernel.alive():
            self._pump(0.05)
        if not self.ended:  # an agent that does not stop is not to be trusted with the next cell
            self.session.lose()

    # -- requests --------------------------------------------------------------------------------

    def request(self, op: str, *, target: Any = None, args: Any = (), kwargs: Any = None,
                context: dict | None = None, timeout: float | None = None, twice: bool = False,
                cpu: student.CpuLimit | None = None) -> Any:
        """Ask the agent one thing; the answer as data (see :mod:`autograder.student` for the errors).
        ``twice`` (a call): the target is called again on the same argument objects, and the answer is
        ``(first, second)``, the second an exception object if that call raised (or
        :data:`student.NOT_CALLED` when the first answer was too large to send twice). With ``cpu``, the
        kernel's CPU time limits it (measured from outside, :class:`.execute.Meter`) and the wall clock
        only as a backstop; its wall time does not count against the test cell's.

        The arguments are encoded from the judge's values and only ever travel one way: whatever the
        kernel does to its copies never flows back into them, so an expected value the check computes
        from them is the judge's own."""
        if self.conn is None:
            raise KernelLost(self.stop_reason or "the kernel is gone")
        self.rid += 1
        values = {"args": list(args), "kwargs": dict(kwargs or {}), "context": dict(context or {})}
        if target is not None:
            values["target"] = target
        try:
            data = protocol.encode({"op": op, "id": self.rid, "twice": twice}, special=_wire, **values)
        except protocol.Refused as exc:  # the check itself passed something that cannot cross: a grader bug
            raise RuntimeError(f"the check passed a value that cannot cross to the kernel: {exc}") from None
        limit, what = self.deadline, f"the exercise's time limit ({self.session.cell_timeout:g} s)"
        if timeout is not None and time.monotonic() + timeout < self.deadline:
            limit, what = time.monotonic() + timeout, f"the {timeout:g} s this step may take"
        if cpu is not None:
            self._meter = Meter(self.kernel, cpu.seconds)
            limit, what = min(time.monotonic() + cpu.wall, self.session.deadline), f"the {cpu.wall:g} s wall-clock backstop"
        try:
            self._send(data, limit, what)
            reply = self._receive(self.rid, limit, what)
        finally:
            if cpu is not None:
                meter, self._meter = self._meter, None
                meter.read()
                cpu.used = meter.cpu
                self.deadline += time.monotonic() - meter.started
                who = (getattr(target, "__name__", None)
                       or (f"the grader's {args[0]} training run" if op == "recipe" and args else op))
                self.metered.append(f"{who} used {meter.cpu:.1f} s of its {cpu.seconds:g} s CPU limit")
        if reply.get("interrupted"):
            raise TimedOut(self.stop_reason or "timed out")
        if "raised" in reply:
            raise student.error_from(reply["raised"] if isinstance(reply["raised"], dict) else {})
        if "refused" in reply:
            raise NotData(str(reply["refused"]))
        if "error" in reply or not reply.get("ok"):
            self._drop(f"the kernel's answer broke the grader's protocol ({reply.get('error', 'no result')})")
        if twice:  # no second answer (a first too large to send twice): nothing to compare
            raised = reply.get("again_raised")
            return reply.get("result"), (student.error_from(raised if isinstance(raised, dict) else {})
                                         if "again_raised" in reply else reply.get("again", student.NOT_CALLED))
        return reply.get("result")

    def release(self) -> None:
        """Let the kernel forget the objects this test cell made."""
        if self.handles and self.conn is not None:
            self.rid += 1
            ids, self.handles = self.handles, []
            with contextlib.suppress(KernelLost, TimedOut):
                self._send(protocol.encode({"op": "release", "id": self.rid}, ids=ids),
                           time.monotonic() + 10, "10 s")
                self._receive(self.rid, time.monotonic() + 10, "10 s")

    # -- the socket and the kernel's output -------------------------------------------------------

    def _send(self, data: bytes, limit: float, what: str) -> None:
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.conn], [], WATCH_EVERY_S)
            if writable:
                try:
                    sent = self.conn.send(view[: 1 << 20])
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self._lost()
                view = view[sent:]
            self._watch(limit, what)

    def _receive(self, rid: int, limit: float, what: str) -> dict:
        """The agent's answer to request ``rid`` (earlier answers that arrive late are skipped).

        A frame's sizes are checked against :attr:`limits` (:data:`protocol.FROM_KERNEL`) before a
        byte of it is buffered: a larger declared size is a protocol break, and the buffers are then
        allocated once, at the declared sizes. The clock is looked at however the bytes come."""
        while True:
            prefix = self._read(protocol.PREFIX_BYTES, limit, what)
            try:
                header_len, payload_len = protocol.read_prefix(bytes(prefix), self.limits)
            except protocol.ProtocolError as exc:
                self._drop(f"the kernel's answer broke the grader's protocol ({exc})")
            try:
                header = self._read(header_len, limit, what)
                payload = self._read(payload_len, limit, what)
                reply = protocol.decode(header, memoryview(payload), self.limits, resolve=self._resolve)
            except protocol.ProtocolError as exc:
                self._drop(f"the kernel's answer broke the grader's protocol ({exc})")
            except MemoryError:  # the worker's own cap (worker.cap_memory)
                header = payload = None
                self._drop(f"the kernel's answer ({(header_len + payload_len) / 2**20:,.0f} MiB) needed more memory "
                           f"than the grader may use{_memory_cap()}; return less data")
            del header, payload
            if reply.get("id") == rid:
                return reply

    def _read(self, n: int, limit: float, what: str) -> bytearray:
        """Exactly ``n`` bytes from the agent. The clock is looked at (:meth:`_watch`) at least every
        ``WATCH_EVERY_S`` whatever the kernel does: sends nothing, a byte at a time, or frame after
        frame without a pause."""
        data = bytearray(n)
        view = memoryview(data)
        got = 0
        while got < n:
            if time.monotonic() - self._watched >= WATCH_EVERY_S:  # since the last look, in any read
                self._watch(limit, what)
            ready, _, _ = select.select([self.conn], [], [], WATCH_EVERY_S)
            if not ready:
                continue
            try:
                k = self.conn.recv_into(view[got:], min(n - got, 1 << 22))
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                k = 0
            if k == 0:
                self._lost()
            got += k
        return data

    def _watch(self, limit: float, what: str) -> None:
        """Between reads: drain the kernel's output, notice its death, enforce the time limit."""
        self._watched = time.monotonic()
        self._pump()
        if not self.kernel.alive():
            self._lost()
        now = time.monotonic()
        if self.stop_reason is None and now > limit:
            self._interrupt(f"timed out: the code ran past {what}")
        elif self.stop_reason is None and self._meter is not None and (why := self._meter.over()):
            self._interrupt(f"stopped: {why}")
        if self._stop_at is not None and now > self._stop_at:
            self._drop(f"{self.stop_reason} and ignored the interrupt, so its kernel was replaced")

    _stop_at: float | None = None
    _meter: Meter | None = None  # the CPU-limited request under way
    _watched = 0.0  # when _watch last looked at the clock

    def _interrupt(self, reason: str) -> None:
        self.stop_reason = reason
        self._stop_at = time.monotonic() + GRACE_S
        self.kernel._interrupt()

    def begin(self, seconds: float) -> None:
        """Start the clock of one test cell."""
        self.deadline = time.monotonic() + seconds
        self.stop_reason, self._stop_at = None, None
        self.output, self.printed, self.metered = [], 0, []

    def _pump(self, wait: float = 0.0, most: int = 500) -> None:
        """Read the kernel's pending output messages: at most ``most`` of them, for at most ``wait`` +
        ``WATCH_EVERY_S`` seconds, so that a kernel flooding its output (under any parent id) cannot
        keep the judge from its clock."""
        cap = self.session.limits.output_kb * 1024
        stop = time.monotonic() + wait + WATCH_EVERY_S
        for _ in range(most):
            if time.monotonic() > stop:
                return
            try:
                msg = self.kernel.kc.get_iopub_msg(timeout=wait)
            except queue.Empty:
                return
            except Exception:  # noqa: BLE001 - a closed channel: the kernel is going away
                return
            wait = 0.0
            if msg.get("parent_header", {}).get("msg_id") != self.msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status" and content.get("execution_state") == "idle":
                self.ended = True
            elif kind == "error":
                self.error = f"{content.get('ename')}: {content.get('evalue')}"
            elif kind in ("stream", "display_data", "execute_result", "update_display_data"):
                text = str(content.get("text", "")) if kind == "stream" else ""
                data = content.get("data") if kind != "stream" else None
                self.printed += len(text) + (sum(len(str(v)) for v in data.values()) if isinstance(data, dict) else 0)
                if self.printed <= cap:
                    self.output.append(text)
                elif self.stop_reason is None:
                    self._interrupt(f"output cap: the code printed more than {self.session.limits.output_kb} KiB "
                                    "while being graded, so it was stopped")

    def _lost(self):
        """The connection ended: say why, from the kernel's exit status (which may take a moment)."""
        why = None
        give_up = time.monotonic() + 3.0
        while self.kernel is not None and why is None and time.monotonic() < give_up:
            why = self.kernel.death()
            if why is None:
                time.sleep(0.05)
        self._drop(why or self.stop_reason or "the kernel closed its connection to the grader")

    def _drop(self, why: str):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.session.lose()
        self.stop_reason = why
        raise KernelLost(why)

    def _resolve(self, tag: str, node: dict, _decoder: Any) -> Any:
        if tag != "h":
            raise protocol.ProtocolError(f"tag {tag!r} in the kernel's answer")
        hid, kind, why = node.get("id"), node.get("type"), node.get("why", "")
        if type(hid) is not int or type(kind) is not str or type(why) is not str or len(kind) + len(why) > 1200:
            raise protocol.ProtocolError("a malformed handle")
        self.handles.append(hid)
        return RemoteObject(self, protocol.Handle(hid, kind, why))


def _memory_cap() -> str:
    """" (its cap: N MiB)" for this process's data cap, when it has one."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    except (ImportError, OSError, ValueError):
        return ""
    return "" if soft == resource.RLIM_INFINITY else f" (its cap: {soft // 2**20:,} MiB)"


def peer_pid(conn: socket.socket) -> int | None:
    """The process id of whoever connected to ``conn``, numbered in this process's PID namespace (the
    kernel records it at connect time; the peer cannot choose it). None where the system does not
    say (``SO_PEERCRED`` is Linux's)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        pid, _uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except OSError:
        return None
    return pid or None


def kernel_process(launcher: int) -> int | None:
    """The pid of the kernel's own process (the one the agent's cell runs in), from the pid of the
    process Jupyter launched; None when it cannot be told (no ``/proc``).

    Without bubblewrap the launcher *is* the kernel (the sandbox wrapper execs it). With bubblewrap
    the launcher is bwrap, whose one child is the init of the kernel's PID namespace, whose first
    child is the kernel. Processes the student's code forks are the kernel's descendants; one that
    is orphaned is re-parented to that init, beside the kernel — so of init's children the kernel is
    the oldest: everything else there was started, directly or not, by the kernel after it started."""
    from .sandbox import BUBBLEWRAP, isolation

    if isolation() != BUBBLEWRAP:
        return launcher
    pid: int | None = launcher
    for _ in range(2):  # bwrap → the namespace's init → the kernel
        children = _children(pid)
        if not children:
            return None
        pid = min(children, key=lambda c: (children[c], c))
    return pid


def _children(parent: int) -> dict[int, int]:
    """{pid: start time} of the processes whose parent is ``parent`` (from ``/proc``)."""
    out = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return out
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # it ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == parent:
            out[int(entry)] = int(fields[19])  # starttime, field 22 of stat
    return out


def _wire(value: Any) -> Any:
    """How the judge's proxies travel: a name, a handle, or a probe function from the catalogue."""
    from ..kernel import probes

    if isinstance(value, RemoteName):
        return protocol.Ref(value.__name__)
    if isinstance(value, RemoteObject):
        return protocol.Handle(value.id, value.type)
    if isinstance(value, probes.Local):
        return protocol.Probe(value.name, value.params)
    return None


# ---------------------------------------------------------------------------------------------
# One exercise
# ---------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    grade_id: str
    max_points: float
    passed: bool
    message: str | None = None  # why it failed: what the check said, or what happened to the kernel
    hidden: bool = False  # it passed the visible tests and failed a hidden one
    output: str = ""  # what the test code and the student's code printed
    seconds: float = 0.0
    lost_kernel: bool = False
    notes: list = field(default_factory=list)

    @property
    def points(self) -> float:
        return self.max_points if self.passed else 0.0


def free_names(code: str) -> list[str]:
    """The names a test cell reads without defining them: the student's functions and classes."""
    table = symtable.symtable(code, "<test>", "exec")
    names = set()

    def walk(t: symtable.SymbolTable) -> None:
        for sym in t.get_symbols():
            if not sym.is_referenced():
                continue
            if t.get_type() == "module":
                if not sym.is_assigned() and not sym.is_imported():
                    names.add(sym.get_name())
            elif sym.is_global() and not sym.is_declared_global():
                names.add(sym.get_name())
        for child in t.get_children():
            walk(child)

    walk(table)
    module_level = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    return sorted(n for n in names - module_level if not hasattr(builtins, n))


def judge(channel: AgentChannel, grade_id: str, points: float, test_source: str, *, hidden: bool,
          seconds: float, log: Any = None) -> Verdict:
    """Run one test cell's code here against the kernel; the verdict and what it said.

    The visible part's messages and output are the student's to read. The hidden part says nothing
    but its verdict: what the checks and the student's code print while it runs is dropped, its
    cases are counted (:func:`checks.case`: a failed case does not stop the others), and the student
    reads how many failed and of which kinds (:func:`hidden_failure`) — never an input, a shape, a
    message from the kernel or a line the student's code printed. The instructor's log gets the
    whole story."""
    visible, hidden_part = split_hidden(test_source)
    names = free_names(test_source)
    start = time.monotonic()
    verdict = Verdict(grade_id, points, False)
    out = io.StringIO()
    part, shown = "visible", None  # shown: how much of the kernel's output belongs to the visible part
    tally = None
    try:
        channel.begin(seconds)
        channel.open()
        namespace: dict = {"__name__": "__test__", "__builtins__": builtins}
        namespace.update({n: RemoteName(channel, n) for n in names})
        with contextlib.redirect_stdout(out), np.errstate(all="ignore"):
            exec(compile(visible, f"<test {grade_id}>", "exec"), namespace)  # the instructor's code
            if hidden and hidden_part.strip():
                part, shown = "hidden", len(channel.output)
                with contextlib.redirect_stdout(io.StringIO()), checks.counting() as tally:
                    exec(compile(hidden_part, f"<hidden test {grade_id}>", "exec"), namespace)
        if tally is not None and tally.failures:
            verdict.message = hidden_failure(tally=tally)
            _log_hidden(log, grade_id, tally.failures)
        else:
            verdict.passed = True
    except (CheckFailure, StudentError, NotData, TimedOut, KernelLost) as exc:
        verdict.lost_kernel = isinstance(exc, KernelLost)
        verdict.message = hidden_failure(exc, tally) if part == "hidden" else visible_failure(exc)
        if part == "hidden":
            _log_hidden(log, grade_id, [*(tally.failures if tally else ()), exc])
    except Exception as exc:  # noqa: BLE001 - the check could not use the answer; say so, log the rest
        verdict.message = (hidden_failure(exc, tally) if part == "hidden" else
                           f"the test could not use what your code returned ({type(exc).__name__}: "
                           f"{_first_line(exc)})")
        if log is not None:
            log.write(f"[{grade_id}] {traceback.format_exc()}\n")
    finally:
        with contextlib.suppress(Exception, KernelLost, TimedOut):
            channel.release()
        with contextlib.suppress(Exception, KernelLost, TimedOut):
            channel.close()
    verdict.hidden = part == "hidden" and not verdict.passed
    verdict.notes += channel.metered
    printed = "".join(channel.output[:shown])
    verdict.output = out.getvalue() + (f"\n[your code printed]\n{printed}" if printed.strip() else "")
    if verdict.passed and tally is not None and tally.total:
        verdict.output += f"{'' if verdict.output.endswith(chr(10)) or not verdict.output else chr(10)}" \
                          f"hidden tests: all {_cases(tally.total)} passed\n"
    verdict.seconds = time.monotonic() - start
    return verdict


def _cases(n: int) -> str:
    return f"{n} case{'s' if n != 1 else ''}"


def _log_hidden(log: Any, grade_id: str, failures: list) -> None:
    """The hidden failures' whole story, for the instructor's log only (the first ten of them)."""
    if log is None:
        return
    for exc in failures[:10]:
        log.write(f"[{grade_id}] hidden case failed: {visible_failure(exc)}\n")
    if len(failures) > 10:
        log.write(f"[{grade_id}] ... and {len(failures) - 10} more hidden cases failed\n")


def visible_failure(exc: BaseException) -> str:
    """The whole story of a visible case's failure: the check's message, or what happened to the kernel."""
    if isinstance(exc, StudentError):
        return explain_error(exc, None)
    if isinstance(exc, NotData):
        return f"your code returned something that is not data: {exc}"
    return str(exc)


HIDDEN_KINDS = {
    "values": "values differ from the reference",
    "shape": "the result has the wrong shape",
    "dtype": "the result has the wrong dtype",
    "type": "the result is not what was asked for (None, not an array, or the wrong tuple)",
    "side effect": "a second call on the same inputs gave another answer (an input changed in place)",
    "not implemented": "it raises NotImplementedError",
}


def hidden_kind(exc: BaseException) -> str:
    """A hidden case's failure by its kind only: what the student may learn without the case's inputs."""
    from ..kernel.checks import raised_kind

    reason = str(exc)
    if isinstance(exc, TimedOut):
        return ("it printed more than the output cap allows" if reason.startswith("output cap")
                else "it ran past the exercise's time limit")
    if isinstance(exc, KernelLost):  # the grader's own words from an exit status, else a category: no kernel text
        return (reason.split("\n")[0] if reason.startswith(("the kernel died:", "the kernel exited with status"))
                else "the kernel stopped answering (it broke the protocol or ignored an interrupt)")
    if isinstance(exc, StudentError):
        return f"your code {raised_kind(exc)}"
    if isinstance(exc, NotData):
        return "your code returned something that is not data"
    if not isinstance(exc, CheckFailure):
        return "the test could not use what your code returned"
    code = getattr(exc, "kind", "check")
    if code.startswith("no "):  # assert_raises: "no ValueError raised"
        return f"{code.removesuffix(' raised')} was raised where one should be"
    return HIDDEN_KINDS.get(code) or (f"your code {code}" if code.startswith("raised") else "a check on the result failed")


def hidden_failure(stopped: BaseException | None = None, tally: Any = None) -> str:
    """What the student reads of a hidden part that failed: how many of its cases failed and of which
    kinds (most frequent first), or, when a timeout or a lost kernel stopped it, where and why.
    Counts and kinds only — see :func:`hidden_kind`."""
    failures = list(tally.failures) if tally is not None else []
    total = tally.total if tally is not None else 0

    def kinds(excs: list) -> str:
        counted = collections.Counter(hidden_kind(e) for e in excs)
        return "; ".join(f"{kind} ({n})" if len(counted) > 1 else kind for kind, n in counted.most_common())

    if isinstance(stopped, (TimedOut, KernelLost)):
        at = total if tally is not None and tally.stopped_in_case else total + 1
        head = f"hidden cases: case {at} stopped the test — {hidden_kind(stopped)}"
        if failures:
            head += f"; before it, {len(failures)} of {_cases(at - 1)} failed — {kinds(failures)}"
    else:
        if stopped is not None:  # a failure outside every case is one more case
            failures.append(stopped)
            total += 1
        head = f"hidden cases: {len(failures)} of {_cases(total)} failed — {kinds(failures)}"
    return (f"{head}.\n  Your code passes the visible tests; the hidden tests try more shapes and settings "
            "(their inputs are not shown). Make the function right in general, not for the visible cases.")


def explain_error(exc: StudentError, label: str | None) -> str:
    """"pad2d raised IndexError: … (in pad2d, line 7 of its cell: …)" for an error from the kernel."""
    text = f"{label + ' ' if label else 'your code '}raised {exc.type_name}: {exc}"
    return text + student.where(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
