"""The judge's wire format: plain data, and nothing a reader has to run to decode.

What crosses between the judge (trusted, outside the sandbox) and a student's kernel is a *frame*:
a JSON header and a byte payload. The header is a tree of plain values — ``null``, booleans,
numbers, strings, JSON lists — and of tagged objects ``{"~": tag, ...}``:

====  ==========================================================================================
tag   value
====  ==========================================================================================
l t   a list / a tuple: ``"v"``, the items
S     a ``torch.Size``: ``"v"``, its ints
d     a dict: ``"v"``, a list of ``[key, value]`` pairs (keys: str, int, float, bool, None, tuples)
a     a ``numpy.ndarray``: ``"dtype"``, ``"shape"``; its bytes at ``"at"`` (``"n"`` bytes) in the payload
g     a numpy scalar (``np.float64(1.5)``): ``"dtype"``, ``"v"``
T     a ``torch.Tensor``: as ``a``, plus ``"grad"`` (requires_grad)
h     a handle: an object that stays in the kernel, ``"id"``; ``"type"`` names its class
r     a reference to a name in the kernel's namespace (judge to kernel only): ``"name"``
p     a probe function the kernel builds from the course's catalogue: ``"name"``, ``"params"``
====  ==========================================================================================

:func:`decode` checks every field against :class:`Limits` (sizes, depth, item counts, dtypes from
a fixed list, shapes that match their bytes) and builds exact built-in, NumPy and PyTorch types
only: a subclass, an object with its own ``__eq__`` or ``__array__``, or a lazy value cannot come
out of it, because nothing in a frame names a class to instantiate. :func:`encode` is the other
side: it refuses such values with a reason a student can act on (:class:`Refused`).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

MAGIC = b"AGP1"
_PREFIX = struct.Struct(">4sQQ")  # magic, header length, payload length
ALIGN = 8

# dtypes that may cross, by their NumPy name; always sent little-endian (or byte-sized).
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64")
TORCH_ONLY_DTYPES = ("bfloat16",)  # sent as float32, restored on the other side


class ProtocolError(Exception):
    """A frame that does not follow the format (or breaks a limit); the message says which rule."""


class Refused(Exception):
    """A value that cannot cross the boundary; the message says what it was and what to return."""


@dataclass(frozen=True)
class Limits:
    header_bytes: int = 64 * 2**20
    payload_bytes: int = 1024 * 2**20
    depth: int = 64
    items: int = 2_000_000  # JSON values and tags in one header
    ndim: int = 32


DEFAULT = Limits()
# What a kernel may send back: far more than any honest answer (the largest, a trained network's
# weights or a batch of saliency maps, are a few MiB) and small enough that the judge can hold one
# reply (payload, decoded copies, the header's JSON objects) in well under a GiB. The agent encodes
# its replies with these limits, so an honest oversized answer is refused in the kernel with a
# reason; the judge reads with them, so a rewritten agent's frame is refused before it is buffered.
FROM_KERNEL = Limits(header_bytes=16 * 2**20, payload_bytes=256 * 2**20)


@dataclass(frozen=True)
class Handle:
    """An object that lives in the kernel; only its number, its class's name and, when it stands
    where data was expected, why it is not data, cross."""
    id: int
    type: str = "object"
    why: str = ""


@dataclass(frozen=True)
class Ref:
    """A name in the kernel's global namespace (what the notebook defined)."""
    name: str


@dataclass(frozen=True)
class Probe:
    """A function the kernel builds from the course's probe catalogue (:mod:`autograder.probes`)."""
    name: str
    params: Any = None


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------

def describe_type(value: Any) -> str:
    """``numpy.matrix``, ``generator``, ``Foo`` — how a refused value is named in a message."""
    t = type(value)
    module = getattr(t, "__module__", "") or ""
    name = getattr(t, "__qualname__", getattr(t, "__name__", "object"))
    if module in ("builtins", "__main__", ""):
        return str(name)
    return f"{module.split('.')[0]}.{name}" if module.startswith(("numpy", "torch")) else str(name)


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _refuse(value: Any, where: str) -> Refused:
    what = describe_type(value)
    if isinstance(value, np.ndarray):
        text = (f"{_a(what)} (a subclass of numpy.ndarray); return a plain array, e.g. "
                "np.asarray(result)")
    elif _is_lazy(value):
        text = f"{_a(what)}, which is not computed yet; return the values (a list or an array)"
    elif _torch_type(value) == "tensor-subclass":
        text = f"{_a(what)} (a subclass of torch.Tensor); return a plain tensor"
    else:
        text = (f"{_a(what)} object, which is not data; return numbers, strings, arrays or tensors "
                "(or lists, tuples and dicts of them)")
    return Refused(f"{where} is {text}" if where else text)


def _is_lazy(value: Any) -> bool:
    import types

    return isinstance(value, (types.GeneratorType, map, filter, zip, range, reversed, enumerate,
                              types.CoroutineType)) or (hasattr(value, "__next__") and hasattr(value, "__iter__"))


def _torch_type(value: Any) -> str | None:
    module = type(value).__module__ or ""
    if not module.startswith("torch"):
        return None
    import torch

    if type(value) is torch.Size:
        return "size"
    if type(value) in (torch.Tensor, torch.nn.Parameter):
        return "tensor"
    if isinstance(value, torch.Tensor):
        return "tensor-subclass"
    return None


class Encoder:
    """Turns a value into (header tree, payload chunks). ``handle`` (optional) is called with an
    object that is not data and returns its :class:`Handle`; without it such objects are refused.
    ``special`` (the judge's side) maps its proxies to :class:`Ref`, :class:`Handle` or :class:`Probe`."""

    def __init__(self, handle: Callable[[Any], Handle] | None = None, limits: Limits = DEFAULT,
                 special: Callable[[Any], Any] | None = None):
        self.handle = handle
        self.limits = limits
        self.special_of = special
        self.chunks: list[bytes | memoryview] = []
        self.size = 0
        self.items = 0

    def _bytes(self, data: bytes | memoryview) -> tuple[int, int]:
        at, n = self.size, len(data)
        if at + n > self.limits.payload_bytes:
            raise Refused(f"the data is larger than the {self.limits.payload_bytes // 2**20} MiB a reply may carry")
        self.chunks.append(data)
        pad = -n % ALIGN
        if pad:
            self.chunks.append(b"\0" * pad)
        self.size += n + pad
        return at, n

    def value(self, v: Any, where: str = "", depth: int = 0) -> Any:
        self.items += 1
        if depth > self.limits.depth:
            raise Refused(f"{where or 'the value'} is nested more than {self.limits.depth} levels deep")
        if self.items > self.limits.items:
            raise Refused(f"{where or 'the value'} holds more than {self.limits.items:,} items; return an array")
        t = type(v)
        if v is None or t in (bool, str):
            return v
        if t is int:
            if abs(v) >= 10**300:
                raise Refused(f"{where or 'the value'} is an integer with more than 300 digits")
            return v
        if t is float:
            return v if math.isfinite(v) else {"~": "g", "dtype": "float", "v": repr(v)}
        if t in (list, tuple):
            return {"~": "l" if t is list else "t",
                    "v": [self.value(x, f"{where}[{i}]", depth + 1) for i, x in enumerate(v)]}
        if t is dict:
            return {"~": "d", "v": [[self.key(k, where, depth), self.value(x, f"{where}[{k!r}]", depth + 1)]
                                    for k, x in v.items()]}
        if t is np.ndarray:
            return self.array(v, where)
        if isinstance(v, np.generic) and t.__module__ == "numpy" and np.dtype(t).name in DTYPES:
            item = v.item()
            if isinstance(item, float) and not math.isfinite(item):
                item = repr(item)
            return {"~": "g", "dtype": np.dtype(t).name, "v": item}
        kind = _torch_type(v)
        if kind == "size":
            return {"~": "S", "v": [int(s) for s in v]}
        if kind == "tensor":
            return self.tensor(v, where)
        if t in (Ref, Probe) or isinstance(v, Handle):
            return self.special(v, where, depth)
        # Subclasses of the plain containers and scalars (an OrderedDict, a namedtuple, an IntEnum)
        # cross as the plain type: what arrives is their items, whatever their own __eq__ says.
        if isinstance(v, dict):
            return self.value(dict(v.items()), where, depth)
        if isinstance(v, tuple) and kind is None:
            return self.value(tuple(v), where, depth)
        if isinstance(v, list):
            return self.value(list(v), where, depth)
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, int) and not isinstance(v, np.generic):
            return self.value(int(v), where, depth)
        if isinstance(v, float) and not isinstance(v, np.generic):
            return self.value(float(v), where, depth)
        if isinstance(v, str):
            return str.__str__(v)
        if self.special_of is not None:
            wire = self.special_of(v)
            if wire is not None:
                return self.special(wire, where, depth)
        if self.handle is not None:
            h = self.handle(v)
            return {"~": "h", "id": h.id, "type": h.type, "why": str(_refuse(v, ""))}
        raise _refuse(v, where)

    def key(self, k: Any, where: str, depth: int) -> Any:
        t = type(k)
        if k is None or t in (bool, int, str):
            return k
        if t is float and math.isfinite(k):
            return k
        if t is tuple:
            return {"~": "t", "v": [self.key(x, where, depth + 1) for x in k]}
        raise Refused(f"{where or 'a dict'} has a key of type {describe_type(k)}; use strings or numbers as keys")

    def array(self, a: np.ndarray, where: str) -> dict:
        name = a.dtype.name
        if name not in DTYPES:
            raise Refused(f"{where or 'the array'} has dtype {a.dtype}; only booleans, integers and floats cross")
        if a.ndim > self.limits.ndim:
            raise Refused(f"{where or 'the array'} has {a.ndim} dimensions (at most {self.limits.ndim})")
        native = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype)
        at, n = self._bytes(memoryview(native).cast("B") if native.size else b"")
        return {"~": "a", "dtype": name, "shape": [int(s) for s in a.shape], "at": at, "n": n}

    def tensor(self, t: Any, where: str) -> dict:
        import torch

        if t.device.type == "meta":
            raise Refused(f"{where or 'the tensor'} is on the meta device and has no values")
        if t.is_sparse or t.layout != torch.strided:
            raise Refused(f"{where or 'the tensor'} is sparse; return a dense tensor (t.to_dense())")
        if t.is_complex() or t.is_quantized:
            raise Refused(f"{where or 'the tensor'} has dtype {t.dtype}; only booleans, integers and floats cross")
        dtype = str(t.dtype).replace("torch.", "")
        data = t.detach().cpu()
        if dtype in TORCH_ONLY_DTYPES:
            data = data.to(torch.float32)
        spec = self.array(data.contiguous().numpy(), where)
        spec.update({"~": "T", "torch_dtype": dtype, "grad": bool(t.requires_grad)})
        return spec

    def special(self, v: Any, where: str, depth: int) -> dict:
        if type(v) is Ref:
            return {"~": "r", "name": str(v.name)}
        if isinstance(v, Handle):
            return {"~": "h", "id": int(v.id), "type": str(v.type)}
        return {"~": "p", "name": str(v.name), "params": self.value(v.params, where, depth + 1)}


def encode(header: dict, *, handle: Callable[[Any], Handle] | None = None, limits: Limits = DEFAULT,
           special: Callable[[Any], Any] | None = None, **values: Any) -> bytes:
    """One frame: ``header`` (plain JSON) with ``values`` encoded into it by name."""
    enc = Encoder(handle, limits, special)
    tree = dict(header)
    for name, value in values.items():
        tree[name] = enc.value(value, "")
    return frame(tree, enc.chunks, enc.size, limits)


def frame(tree: dict, chunks: list, size: int, limits: Limits = DEFAULT) -> bytes:
    text = json.dumps(tree, separators=(",", ":")).encode()
    if len(text) > limits.header_bytes:
        raise Refused(f"the answer holds {len(text) / 2**20:,.0f} MiB of numbers and strings outside arrays, more "
                      f"than the {limits.header_bytes // 2**20} MiB a reply may carry; return an array instead of lists")
    return b"".join([_PREFIX.pack(MAGIC, len(text), size), text, *chunks])


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

PREFIX_BYTES = _PREFIX.size


def read_prefix(prefix: bytes, limits: Limits = DEFAULT) -> tuple[int, int]:
    """(header length, payload length) from a frame's first bytes, checked against ``limits``."""
    if len(prefix) != PREFIX_BYTES:
        raise ProtocolError("the frame ended inside its prefix")
    magic, header_len, payload_len = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError("the frame does not start with the protocol's magic bytes")
    if header_len > limits.header_bytes:
        raise ProtocolError(f"the header is {header_len:,} bytes (limit {limits.header_bytes:,})")
    if payload_len > limits.payload_bytes:
        raise ProtocolError(f"the payload is {payload_len:,} bytes (limit {limits.payload_bytes:,})")
    return header_len, payload_len


class Decoder:
    """Builds values from a header tree and its payload. ``resolve`` (optional) turns ``h``, ``r``
    and ``p`` tags into objects (the kernel's side); without it handles become :class:`Handle`,
    and references and probes are refused (the judge's side)."""

    def __init__(self, payload: bytes | memoryview, limits: Limits = DEFAULT,
                 resolve: Callable[[str, dict, "Decoder"], Any] | None = None):
        self.payload = memoryview(payload)
        self.limits = limits
        self.resolve = resolve
        self.items = 0

    def value(self, node: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > self.limits.items:
            raise ProtocolError(f"more than {self.limits.items:,} values in one frame")
        if depth > self.limits.depth:
            raise ProtocolError(f"values nested more than {self.limits.depth} levels deep")
        t = type(node)
        if node is None or t in (bool, int, str):
            return node
        if t is float:
            return node
        if t is list:  # a bare JSON list is never produced; refuse rather than guess
            raise ProtocolError("a bare list where a tagged value was expected")
        if t is not dict:
            raise ProtocolError(f"unexpected JSON value of type {t.__name__}")
        tag = node.get("~")
        if tag in ("l", "t", "S"):
            items = node.get("v")
            if type(items) is not list:
                raise ProtocolError(f"tag {tag!r} without a list of items")
            out = [self.value(x, depth + 1) for x in items]
            if tag == "l":
                return out
            if tag == "t":
                return tuple(out)
            if not all(type(x) is int for x in out):
                raise ProtocolError("a torch.Size of non-integers")
            import torch

            return torch.Size(out)
        if tag == "d":
            pairs = node.get("v")
            if type(pairs) is not list:
                raise ProtocolError("a dict without a list of pairs")
            out = {}
            for pair in pairs:
                if type(pair) is not list or len(pair) != 2:
                    raise ProtocolError("a dict entry that is not a [key, value] pair")
                out[self.key(pair[0], depth + 1)] = self.value(pair[1], depth + 1)
            return out
        if tag == "g":
            return self.scalar(node)
        if tag in ("a", "T"):
            arr = self.array(node)
            if tag == "a":
                return arr
            return self.tensor(arr, node)
        if tag in ("h", "r", "p"):
            if self.resolve is not None:
                return self.resolve(tag, node, self)
            if tag == "h":
                hid, kind, why = node.get("id"), node.get("type"), node.get("why", "")
                if type(hid) is not int or type(kind) is not str or len(kind) > 200 \
                        or type(why) is not str or len(why) > 1000:
                    raise ProtocolError("a handle without an integer id and a type name")
                return Handle(hid, kind, why)
            raise ProtocolError(f"tag {tag!r} is not allowed in this direction")
        raise ProtocolError(f"unknown tag {tag!r}")

    def key(self, node: Any, depth: int) -> Any:
        if node is None or type(node) in (bool, int, str, float):
            return node
        if type(node) is dict and node.get("~") == "t" and type(node.get("v")) is list:
            if depth > self.limits.depth:
                raise ProtocolError("dict keys nested too deeply")
            return tuple(self.key(x, depth + 1) for x in node["v"])
        raise ProtocolError("a dict key that is not a string, number, None or tuple")

    def scalar(self, node: dict) -> Any:
        dtype, v = node.get("dtype"), node.get("v")
        if dtype == "float":  # a non-finite Python float
            if v not in ("nan", "inf", "-inf"):
                raise ProtocolError("a special float that is not nan, inf or -inf")
            return float(v)
        if dtype not in DTYPES:
            raise ProtocolError(f"scalar dtype {dtype!r} is not allowed")
        if type(v) is str and v in ("nan", "inf", "-inf"):
            v = float(v)
        if type(v) not in (bool, int, float):
            raise ProtocolError("a numpy scalar whose value is not a number")
        try:
            return np.dtype(dtype).type(v)
        except (OverflowError, ValueError) as exc:
            raise ProtocolError(f"scalar {v!r} does not fit {dtype}") from exc

    def array(self, node: dict) -> np.ndarray:
        dtype, shape, at, n = node.get("dtype"), node.get("shape"), node.get("at"), node.get("n")
        if dtype not in DTYPES:
            raise ProtocolError(f"array dtype {dtype!r} is not allowed")
        if type(shape) is not list or len(shape) > self.limits.ndim or \
                not all(type(s) is int and 0 <= s < 2**40 for s in shape):
            raise ProtocolError("an array shape that is not a short list of non-negative integers")
        if type(at) is not int or type(n) is not int or at < 0 or n < 0 or at + n > len(self.payload):
            raise ProtocolError("an array whose bytes lie outside the payload")
        dt = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
        count = math.prod(shape)
        if count * dt.itemsize != n:
            raise ProtocolError(f"an array of shape {tuple(shape)} and dtype {dtype} needs {count * dt.itemsize} "
                                f"bytes, the frame gives {n}")
        arr = np.frombuffer(self.payload[at:at + n], dtype=dt, count=count).reshape(shape)
        return arr.astype(np.dtype(dtype), copy=True)  # native byte order, writable, owned

    def tensor(self, arr: np.ndarray, node: dict) -> Any:
        import torch

        t = torch.from_numpy(arr)
        wanted = node.get("torch_dtype")
        if wanted in TORCH_ONLY_DTYPES:
            t = t.to(getattr(torch, wanted))
        elif wanted is not None and wanted != str(t.dtype).replace("torch.", ""):
            raise ProtocolError(f"a tensor whose dtype {wanted!r} does not match its bytes")
        if node.get("grad") is True and t.is_floating_point():
            t.requires_grad_(True)
        return t


def decode(header: bytes, payload: bytes | memoryview, limits: Limits = DEFAULT,
           resolve: Callable[[str, dict, Decoder], Any] | None = None) -> dict:
    """The header of a frame as a dict whose tagged values are decoded (see :class:`Decoder`)."""
    try:
        tree = json.loads(bytes(header).decode("utf-8"))
    except RecursionError:
        raise ProtocolError("the header is nested too deeply to read") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"the header is not JSON ({type(exc).__name__})") from None
    if type(tree) is not dict:
        raise ProtocolError("the header is not a JSON object")
    dec = Decoder(payload, limits, resolve)
    out = {}
    for k, v in tree.items():
        try:
            out[k] = dec.value(v)
        except RecursionError:
            raise ProtocolError("values nested too deeply to read") from None
    return out


def roundtrip(value: Any, limits: Limits = DEFAULT, handle: Callable[[Any], Handle] | None = None,
              resolve: Callable[[str, dict, Decoder], Any] | None = None) -> Any:
    """What the judge would receive for ``value``: encoded and decoded (Refused for what cannot cross).
    The notebook's own test cells use it, so they see exactly what grading sees."""
    enc = Encoder(handle, limits)
    tree = enc.value(value, "")
    payload = b"".join(bytes(c) for c in enc.chunks)
    return Decoder(payload, limits, resolve).value(json.loads(json.dumps(tree)))
