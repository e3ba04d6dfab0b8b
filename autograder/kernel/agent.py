"""The kernel's end of the judge's protocol: answers requests about the notebook's objects.

The judge (:mod:`autograder.grading.judge`) starts it by running one cell,
``autograder.agent.serve(SOCKET)``, after the notebook's cells have defined the student's code.
It then connects over a Unix socket in the kernel's scratch folder and asks, one frame at a
time (:mod:`autograder.protocol`): call this function on these inputs, build this object, call
this method, read this attribute, run this operation (:mod:`autograder.ops`) — and hands the
answer back as plain data. Objects that are not data (a model, a cache, an instance of the
student's class) stay here and travel as numbered handles.

Everything in this module runs inside the student's process, so the student's code can change
it; that only changes the data it returns, which the judge checks against its own references.
Its job is to make *honest* answers easy to read: an exception becomes its type, its message and
the lines of the student's code it came through; a value that is not data becomes a handle that
says what it was.
"""

from __future__ import annotations

import contextlib
import json
import linecache
import os
import socket
import tempfile
from typing import Any

from . import protocol
from .protocol import Handle, ProtocolError, Refused

MAX_MESSAGE = 2000  # characters of an exception message that cross


class Agent:
    def __init__(self, namespace: dict):
        self.ns = namespace
        self.objects: dict[int, Any] = {}
        self.next_id = 1

    # -- handles and references ------------------------------------------------------------------

    def handle(self, obj: Any) -> Handle:
        for hid, known in self.objects.items():  # the same object keeps its number
            if known is obj:
                return Handle(hid, protocol.describe_type(obj))
        hid, self.next_id = self.next_id, self.next_id + 1
        self.objects[hid] = obj
        return Handle(hid, protocol.describe_type(obj))

    def resolve(self, tag: str, node: dict, decoder: protocol.Decoder) -> Any:
        if tag == "r":
            name = node.get("name")
            if type(name) is not str:
                raise ProtocolError("a reference without a name")
            if name not in self.ns:
                raise NameError(f"name {name!r} is not defined: the notebook must define {name}")
            return self.ns[name]
        if tag == "h":
            hid = node.get("id")
            if hid not in self.objects:
                raise ProtocolError(f"no object with handle {hid!r}")
            return self.objects[hid]
        from . import probes

        return probes.build(node.get("name"), decoder.value(node.get("params")))

    # -- one request -----------------------------------------------------------------------------

    def answer(self, header: bytes, payload: bytes) -> bytes:
        request_id = None
        try:
            request_id = json.loads(header).get("id")  # first, so that every answer carries it
        except (ValueError, AttributeError):
            pass
        try:
            request = protocol.decode(header, payload, resolve=self.resolve)
            return self.dispatch(request)
        except KeyboardInterrupt:
            return protocol.encode({"id": request_id, "interrupted": True})
        except (ProtocolError, Refused) as exc:
            return protocol.encode({"id": request_id, "error": f"{type(exc).__name__}: {exc}"})
        except BaseException as exc:  # a NameError from a reference, a broken probe: the student's
            return protocol.encode({"id": request_id}, raised=raised(exc))

    def dispatch(self, request: dict) -> bytes:
        from . import ops

        op, rid = request.get("op"), request.get("id")
        if op == "release":
            for hid in request.get("ids") or []:
                self.objects.pop(hid, None)
            return protocol.encode({"id": rid, "ok": True})
        if op == "hello":
            return protocol.encode({"id": rid, "ok": True, "pid": os.getpid()})
        args = list(request.get("args") or [])
        kwargs = dict(request.get("kwargs") or {})
        try:
            with _context(request.get("context") or {}):
                if op == "call":
                    result = request["target"](*args, **kwargs)
                elif op in ops.OPERATIONS:
                    result = ops.OPERATIONS[op](*args, **kwargs)
                else:
                    return protocol.encode({"id": rid, "error": f"unknown operation {op!r}"})
        except KeyboardInterrupt:
            return protocol.encode({"id": rid, "interrupted": True})
        except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises is the answer
            return protocol.encode({"id": rid}, raised=raised(exc))
        # One encoder for the whole reply, so that the first answer is encoded once (serve refuses,
        # with a reason, a reply larger than the judge reads: protocol.FROM_KERNEL).
        enc = protocol.Encoder(self.handle)
        try:
            tree = {"id": rid, "ok": True, "result": enc.value(result, "")}
            if op == "call" and request.get("twice") and enc.size <= protocol.FROM_KERNEL.payload_bytes // 2:
                # the same argument objects once more (see checks.call_twice); an answer larger than half
                # a reply could not come back twice: no second call
                try:
                    with _context(request.get("context") or {}):
                        tree["again"] = enc.value(request["target"](*args, **kwargs), "")
                except KeyboardInterrupt:
                    return protocol.encode({"id": rid, "interrupted": True})
                except Refused:
                    raise
                except BaseException as exc:  # noqa: BLE001 - the second answer differs: that is the finding
                    tree["again_raised"] = enc.value(raised(exc), "")
            return protocol.frame(tree, enc.chunks, enc.size)
        except Refused as exc:
            return protocol.encode({"id": rid, "refused": str(exc)})

    # -- the loop --------------------------------------------------------------------------------

    def serve(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        try:
            while True:
                try:
                    prefix = _recv(sock, protocol.PREFIX_BYTES)
                    if prefix is None:
                        return
                    header_len, payload_len = protocol.read_prefix(prefix)
                    header = _recv(sock, header_len)
                    payload = _recv(sock, payload_len) if payload_len else b""
                    if header is None or payload is None:
                        return
                    if header == b'{"op":"bye"}':
                        return
                    reply = _within_limits(self.answer(header, payload), header)
                except KeyboardInterrupt:  # an interrupt that arrived between requests
                    continue
                _send(sock, reply)
        finally:
            sock.close()


def _within_limits(reply: bytes, request: bytes) -> bytes:
    """``reply``, or, when it is larger than the judge reads (:data:`protocol.FROM_KERNEL`), a
    refusal that says so: the judge would take the frame itself for a broken protocol."""
    limits = protocol.FROM_KERNEL
    _, header_len, payload_len = protocol._PREFIX.unpack(reply[:protocol.PREFIX_BYTES])
    if payload_len > limits.payload_bytes:
        why = (f"the answer is {payload_len / 2**20:,.0f} MiB of arrays, more than the "
               f"{limits.payload_bytes // 2**20} MiB a reply may carry; return less data")
    elif header_len > limits.header_bytes:
        why = (f"the answer holds {header_len / 2**20:,.0f} MiB of numbers and strings outside arrays, more "
               f"than the {limits.header_bytes // 2**20} MiB a reply may carry; return an array instead of lists")
    else:
        return reply
    try:
        request_id = json.loads(request).get("id")
    except (ValueError, AttributeError):
        request_id = None
    return protocol.encode({"id": request_id, "refused": why})


def _send(sock: socket.socket, data: bytes) -> None:
    """All of ``data``, even if an interrupt meant for the call before arrives while it goes."""
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except KeyboardInterrupt:
            continue


def _recv(sock: socket.socket, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


@contextlib.contextmanager
def _context(context: dict):
    """What a call runs under: NumPy's floating-point error handling, PyTorch's random seed."""
    with contextlib.ExitStack() as stack:
        if context.get("errstate"):
            import numpy as np

            stack.enter_context(np.errstate(**{k: v for k, v in context["errstate"].items()
                                               if k in ("all", "over", "under", "divide", "invalid")}))
        if context.get("torch_seed") is not None:
            import torch

            torch.manual_seed(int(context["torch_seed"]))
        yield


def _is_cell(filename: str) -> bool:
    """Whether a frame's file is a notebook cell (ipykernel writes each cell to a temporary file)."""
    return filename.startswith((os.path.join(tempfile.gettempdir(), "ipykernel_"), "<ipython-input", "<cell"))


def raised(exc: BaseException) -> dict:
    """An exception as data: its type, the built-in types it is one of, its message, and the lines of
    the notebook's code it passed through (never the grader's own frames). An exception raised
    *because of* another (``raise ... from exc``) also shows where that one came from."""
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still has a type
        message = "(its message could not be read)"
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + "…"
    where = []
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 5:
        seen.add(id(current))
        tb = current.__traceback__
        frames = []
        while tb is not None:
            code = tb.tb_frame.f_code
            if _is_cell(code.co_filename):
                line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
                frames.append([str(getattr(code, "co_qualname", code.co_name))[:200], int(tb.tb_lineno), line[:200]])
            tb = tb.tb_next
        where = where + frames  # the cause (the original error) last
        current = current.__cause__
    bases = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
    return {"type": type(exc).__name__[:100], "bases": bases, "message": message, "where": where[-3:]}


def serve(path: str) -> None:
    """Answer the judge on ``path`` until it says goodbye (run as one cell by the judge)."""
    from IPython import get_ipython

    shell = get_ipython()
    Agent(shell.user_ns if shell is not None else {}).serve(path)
