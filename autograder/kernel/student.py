"""The student's code as a check sees it.

A check (:mod:`autograder.suites`) is handed the student's functions and classes. In a notebook's
own test cell those are the objects themselves; when grading, the judge hands it *proxies*
(:class:`Remote`) for names in the student's kernel. Either way a check reaches them only through
this module — :func:`call`, :func:`new`, :func:`op` — and gets the same answer: plain data that
has crossed the protocol (:mod:`autograder.protocol`), with objects that are not data as handles.
In the notebook the crossing is simulated (:func:`protocol.roundtrip`), so the visible tests see
exactly what the grader will see.

Errors raised by the student's code come back as the same built-in exception types (a remote
``ValueError`` is still a ``ValueError``, and a :class:`StudentError`) so that checks treat both
sides alike. :class:`KernelLost` and :class:`TimedOut` are ``BaseException``: no check catches them;
the judge does, and charges the exercise.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Callable

import numpy as np

from . import ops, protocol
from .protocol import Handle


class StudentError(Exception):
    """An exception the student's code raised in the kernel. ``type_name`` is its class's name,
    ``where`` the lines of the notebook it came through: [(function, line, source), ...]."""

    type_name = "Exception"
    where: list = []

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotData(Exception):
    """The student's code returned something the protocol cannot carry (the message says what)."""


class KernelLost(BaseException):
    """The kernel died or stopped answering while running the student's code (the reason)."""


class TimedOut(BaseException):
    """The exercise ran past its time limit; the kernel was interrupted (and survived)."""

    def _render_traceback_(self) -> list[str]:
        """In a notebook: the reason and the student's line it was stopped at, no grader frames."""
        return [f"TimedOut: {self}{where(self)}"]


NOT_CALLED = Handle(0, "not called", "the first answer was too large to send twice")  # call(..., twice=True)'s
# second answer when there is none


class CpuLimit:
    """The CPU time one call of the student's code may take (``seconds``), and, after it, what it
    took (``used``). When grading, the judge measures it from outside the kernel: the CPU time of
    the kernel's whole process tree, every thread and child process summed, so a busy grading
    machine costs nothing; a run that neither computes nor waits for a CPU for ``seconds`` is hung,
    and ``wall`` (default four times ``seconds``) is a last wall-clock backstop. In a notebook's
    own test cell it is this process's CPU time (``ITIMER_PROF`` where there is one)."""

    WALL_FACTOR = 4.0

    def __init__(self, seconds: float, wall: float | None = None):
        self.seconds = float(seconds)
        self.wall = float(wall) if wall is not None else self.WALL_FACTOR * self.seconds
        self.used: float | None = None

    def __repr__(self) -> str:
        used = "" if self.used is None else f", used {self.used:.1f} s"
        return f"CpuLimit({self.seconds:g} s{used})"


def _process_cpu() -> float:
    try:
        import resource
    except ImportError:  # Windows
        import time

        return time.process_time()
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def _local_cpu(limit: "CpuLimit | None"):
    """A notebook's own test cell: stop the call past ``limit.seconds`` of this process's CPU time."""
    if limit is None:
        yield
        return
    import signal
    import threading

    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    start = _process_cpu()

    def on_profile(signum, frame):
        raise TimedOut(f"stopped: it used more than its {limit.seconds:g} s CPU limit")

    if usable:
        old = signal.signal(signal.SIGPROF, on_profile)
        signal.setitimer(signal.ITIMER_PROF, limit.seconds)
    try:
        yield
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, old)
        limit.used = _process_cpu() - start


_ERROR_TYPES: dict[tuple[str, str], type] = {}
BUILTIN_ERRORS = {name: getattr(__builtins__, name, None) if not isinstance(__builtins__, dict)
            else __builtins__.get(name) for name in (
    "ArithmeticError", "AssertionError", "AttributeError", "BufferError", "EOFError", "FloatingPointError",
    "ImportError", "IndexError", "KeyError", "LookupError", "MemoryError", "ModuleNotFoundError",
    "NameError", "NotImplementedError", "OSError", "OverflowError", "RecursionError", "ReferenceError",
    "RuntimeError", "StopIteration", "SystemError", "TypeError", "UnboundLocalError", "UnicodeError",
    "ValueError", "ZeroDivisionError")}


def where(exc: BaseException) -> str:
    """The line of the student's code an error came from, as a short clause: from the kernel, the
    lines it sent; raised here (a notebook's own test cell), the innermost frame of the notebook's
    cells in its traceback (never a grader's frame or path)."""
    if isinstance(exc, StudentError):
        frames = exc.where or []
    else:
        from .agent import raised

        frames = raised(exc)["where"]
    if not frames:
        return ""
    fn, line, source = frames[-1]
    return f" (in {fn}, line {line} of its cell: {source})" if source else f" (in {fn}, line {line} of its cell)"


def error_from(data: dict) -> StudentError:
    """A StudentError that is also the first built-in exception type the remote one was."""
    name = str(data.get("type") or "Exception")
    base = next((b for b in data.get("bases") or [] if b in BUILTIN_ERRORS and BUILTIN_ERRORS[b] is not None), None)
    key = (name, base or "")
    if key not in _ERROR_TYPES:
        bases = (StudentError, BUILTIN_ERRORS[base]) if base else (StudentError,)
        _ERROR_TYPES[key] = type(name, bases, {"type_name": name})
    exc = _ERROR_TYPES[key](inert(str(data.get("message") or "")))
    exc.where = [tuple(inert(str(x)) if isinstance(x, str) else x for x in w)
                 for w in data.get("where") or [] if isinstance(w, list) and len(w) == 3]
    return exc


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(text: str) -> str:
    """Text from the student's kernel without control characters (no terminal escape sequences
    reach an instructor's screen through a message)."""
    return _CONTROL.sub("?", text)


class Remote:
    """Something that lives in a student's kernel, as the judge refers to it."""

    _session: Any

    def _wire(self) -> Any:
        raise NotImplementedError


class RemoteName(Remote):
    """A name the notebook defined (a function or a class); calling it calls it in the kernel."""

    def __init__(self, session: Any, name: str):
        self._session, self.__name__ = session, name

    def _wire(self) -> protocol.Ref:
        return protocol.Ref(self.__name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return call(self, *args, **kwargs)

    def __repr__(self) -> str:
        return self.__name__


class RemoteObject(Remote, Handle):
    """An object in the kernel (an instance, a model, a cache), known by its handle."""

    def __init__(self, session: Any, handle: Handle):
        object.__setattr__(self, "id", handle.id)
        object.__setattr__(self, "type", handle.type)
        object.__setattr__(self, "why", handle.why)
        object.__setattr__(self, "_session", session)

    def _wire(self) -> Handle:
        return Handle(self.id, self.type)

    def __repr__(self) -> str:
        return f"<{self.type} in the kernel>"

    def __hash__(self) -> int:
        return hash((id(self._session), self.id))


class LocalHandle(Handle):
    """An object that is not data, in the notebook's own process (the object itself rides along)."""

    def __init__(self, hid: int, type_name: str, obj: Any, why: str = ""):
        object.__setattr__(self, "id", hid)
        object.__setattr__(self, "type", type_name)
        object.__setattr__(self, "why", why)
        object.__setattr__(self, "obj", obj)

    def __hash__(self) -> int:
        return hash(("local", self.id))


def is_handle(value: Any) -> bool:
    """Whether a value is an object that did not cross as data (a model, an instance, a cache)."""
    return isinstance(value, Handle)


def type_of(value: Any) -> str:
    """The class name of a handle's object, or of a plain value."""
    return value.type if isinstance(value, Handle) else protocol.describe_type(value)


# ---------------------------------------------------------------------------------------------
# The three ways a check reaches the student's code
# ---------------------------------------------------------------------------------------------

def call(fn: Any, *args: Any, context: dict | None = None, timeout: float | None = None, twice: bool = False,
         cpu: CpuLimit | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, answered as data. The student's code gets its own copies of the
    arguments (they cross as data, or are copied here): nothing it does to them reaches the check's
    values. ``context``: ``errstate`` (NumPy's floating-point errors), ``torch_seed``; ``timeout``:
    seconds this call may take (remote only); ``cpu``: the CPU time it may take instead (:class:`CpuLimit`,
    which says afterwards what it took). ``twice``: call it again on the same copies and answer
    ``(first, second)``, the second an exception object if that call raised (:func:`checks.call_twice`)."""
    session = _session_of(fn, args, kwargs)
    if session is not None:
        return session.request("call", target=fn, args=args, kwargs=kwargs, context=context or {},
                               timeout=timeout, twice=twice, cpu=cpu)
    target, args, kwargs = _unwrap(fn), _unwrap(_private(args)), _unwrap(_private(kwargs))
    with _local_context(context or {}), _local_cpu(cpu):
        first = _local(target(*args, **kwargs))
    if not twice:
        return first
    try:
        with _local_context(context or {}):
            return first, _local(target(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - the second answer differs: that is the finding
        return first, exc


def _private(value: Any) -> Any:
    """``value`` with its arrays and tensors copied, as if it had crossed the protocol."""
    t = type(value)
    if t is tuple or t is list:
        return t(_private(v) for v in value)
    if t is dict:
        return {k: _private(v) for k, v in value.items()}
    if t is np.ndarray:
        return value.copy()
    if t.__module__.startswith("torch"):
        import torch

        if t is torch.Tensor:
            copy = value.detach().clone()
            return copy.requires_grad_(True) if value.requires_grad and copy.is_floating_point() else copy
    return value


def new(factory: Any, *args: Any, meta: bool = False, **kwargs: Any) -> Any:
    """An instance of the student's class (or what their builder returns), kept where it lives;
    a handle when it is not data."""
    return op("new", factory, *args, meta=meta, **kwargs)


def op(name: str, *args: Any, timeout: float | None = None, context: dict | None = None,
       cpu: CpuLimit | None = None, **kwargs: Any) -> Any:
    """One of :mod:`autograder.ops`' operations on the student's objects, answered as data; like
    :func:`call`, on copies of the check's arrays, and with ``cpu`` limited by CPU time."""
    session = _session_of(None, args, kwargs)
    if session is not None:
        return session.request(name, args=args, kwargs=kwargs, context=context or {}, timeout=timeout, cpu=cpu)
    with _local_context(context or {}), _local_cpu(cpu):
        return _local(ops.OPERATIONS[name](*_unwrap(_private(args)), **_unwrap(_private(kwargs))))


def method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """``obj.name(*args, **kwargs)`` for an object of the student's."""
    return op("method", obj, name, *args, **kwargs)


def side_of(*things: Any) -> Any:
    """The kernel session the student's objects live in, or None for the notebook's own process.
    Objects a check makes for the student's code (a model, a loader) must be made on this side."""
    return _session_of(None, things, {})


def make(side: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Run operation ``name`` on ``side`` (a session, or None for here): how a check makes the
    objects it hands to the student's code (models, loaders, optimizers) where that code runs."""
    if side is not None:
        return side.request(name, args=args, kwargs=kwargs, context={})
    return _local(ops.OPERATIONS[name](*_unwrap(args), **_unwrap(kwargs)))


# ---------------------------------------------------------------------------------------------
# The notebook's own process
# ---------------------------------------------------------------------------------------------

def _session_of(fn: Any, args: Any, kwargs: Any) -> Any:
    for v in (fn, *args, *kwargs.values()):
        if isinstance(v, Remote):
            return v._session
    return None


def _unwrap(value: Any) -> Any:
    if isinstance(value, LocalHandle):
        return value.obj
    if type(value) is tuple:
        return tuple(_unwrap(v) for v in value)
    if type(value) is list:
        return [_unwrap(v) for v in value]
    if type(value) is dict:
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _local(value: Any) -> Any:
    """``value`` as the judge would receive it (non-data objects as :class:`LocalHandle`)."""
    made: dict[int, Any] = {}

    def handle(obj: Any) -> Handle:
        for hid, known in made.items():
            if known is obj:
                return Handle(hid, protocol.describe_type(obj))
        made[len(made) + 1] = obj
        return Handle(len(made), protocol.describe_type(obj))

    def resolve(tag: str, node: dict, _decoder: Any) -> Any:
        if tag != "h":
            raise protocol.ProtocolError(f"tag {tag!r} in a result")
        return LocalHandle(node["id"], node["type"], made[node["id"]], node.get("why", ""))

    try:
        return protocol.roundtrip(value, handle=handle, resolve=resolve)
    except protocol.Refused as exc:
        raise NotData(str(exc)) from None


@contextlib.contextmanager
def _local_context(context: dict):
    with contextlib.ExitStack() as stack:
        if context.get("errstate"):
            import numpy as np

            stack.enter_context(np.errstate(**context["errstate"]))
        if context.get("torch_seed") is not None:
            import torch

            torch.manual_seed(int(context["torch_seed"]))
        yield


def probe(name: str, params: Any = None) -> Callable:
    """A function from the course's probe catalogue (:mod:`autograder.probes`), to hand to the
    student's code: built here for a local call, rebuilt from its name in the kernel for a remote one."""
    from . import probes

    return probes.Local(name, params)
