"""The judge's wire format: what crosses is plain data, and a hostile frame is refused, not run.

The kernel is the student's process, so every frame the judge reads may be hostile. These tests
build such frames by hand (the agent is not involved) and check that the decoder refuses each
with a reason, within its limits, and that what it does accept comes out as exact built-in,
NumPy or PyTorch types.
"""

from __future__ import annotations

import json
import struct
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograder.kernel import protocol
from autograder.kernel.protocol import Handle, Limits, ProtocolError, Refused


class Lying(np.ndarray):
    """An array subclass whose comparisons always say yes."""

    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)


LYING = np.zeros(3).view(Lying)


def raw_frame(header: object, payload: bytes = b"", magic: bytes = protocol.MAGIC) -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack(">4sQQ", magic, len(text), len(payload)) + text + payload


def read(frame: bytes, limits: Limits = protocol.DEFAULT) -> dict:
    """Decode a frame the way the judge does: prefix, then header and payload."""
    header_len, payload_len = protocol.read_prefix(frame[:protocol.PREFIX_BYTES], limits)
    start = protocol.PREFIX_BYTES
    return protocol.decode(frame[start:start + header_len], frame[start + header_len:start + header_len + payload_len],
                           limits)


def test_plain_values_cross_as_exact_types():
    value = [1, -2**70, 2.5, float("nan"), float("-inf"), "ü", None, True, (1, (2, 3)),
             {"a": np.arange(6, dtype=np.int16).reshape(2, 3), 3: np.float32(1.5), (1, "x"): []},
             np.zeros((0, 4)), np.bool_(True), torch.ones(2, 3, dtype=torch.float64), torch.Size([2, 3])]
    back = read(protocol.encode({"id": 1}, v=value))["v"]
    assert type(back) is list and type(back[8]) is tuple and type(back[9]) is dict
    assert back[1] == -2**70 and np.isnan(back[3]) and back[4] == float("-inf")
    arr = back[9]["a"]
    assert type(arr) is np.ndarray and arr.dtype == np.int16 and arr.flags.writeable
    assert np.array_equal(arr, np.arange(6).reshape(2, 3))
    assert type(back[9][3]) is np.float32 and back[9][(1, "x")] == []
    assert back[10].shape == (0, 4) and type(back[11]) is np.bool_
    assert type(back[12]) is torch.Tensor and back[12].dtype == torch.float64
    assert type(back[13]) is torch.Size and back[13] == (2, 3)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(dtype=st.sampled_from([np.bool_, np.int8, np.uint16, np.int64, np.float16, np.float32,
                                         np.float64]),
                  shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_every_allowed_array_roundtrips_bit_for_bit(a):
    back = protocol.roundtrip(a)
    assert type(back) is np.ndarray and back.dtype == a.dtype and back.shape == a.shape
    assert back.tobytes() == a.tobytes()


def test_big_endian_and_non_contiguous_arrays_arrive_native_and_equal():
    a = np.arange(12, dtype=">f8").reshape(3, 4)[:, ::2]
    back = protocol.roundtrip(a)
    assert back.dtype == np.float64 and back.dtype.isnative and np.array_equal(back, a)


def test_container_subclasses_cross_as_plain_containers():
    """An OrderedDict, a namedtuple, a str or int subclass arrive as the plain type: their own
    __eq__ cannot come along."""
    class Liar(dict):
        def __eq__(self, other):
            return True

    Pair = namedtuple("Pair", "a b")
    back = protocol.roundtrip([OrderedDict(x=1), Pair(1, 2), Liar(k=2)])
    assert [type(v) for v in back] == [dict, tuple, dict] and back[2] == {"k": 2}


@pytest.mark.parametrize("value, words", [
    (LYING, "subclass of numpy.ndarray"),
    (np.array([object()], dtype=object), "dtype object"),
    (np.array(["a"]), "dtype <U1"),
    ((x for x in range(3)), "not computed yet"),
    (map(abs, [1]), "not computed yet"),
    (object(), "not data"),
    (torch.empty(2, device="meta"), "meta device"),
    (torch.ones(2, dtype=torch.complex64), "complex64"),
])
def test_values_that_are_not_data_are_refused_with_a_reason(value, words):
    with pytest.raises(Refused, match=words):
        protocol.roundtrip(value)


def test_non_data_becomes_a_handle_saying_why_when_handles_are_allowed():
    made = []

    def handle(obj):
        made.append(obj)
        return Handle(len(made), protocol.describe_type(obj))

    back = protocol.roundtrip([LYING, 3], handle=handle)
    assert isinstance(back[0], Handle) and "subclass of numpy.ndarray" in back[0].why and back[1] == 3


@pytest.mark.parametrize("frame, words", [
    (raw_frame({"v": 1}, magic=b"XXXX"), "magic"),
    (raw_frame(b"{not json"), "not JSON"),
    (raw_frame(b"\xff\xfe"), "not JSON"),
    (raw_frame([1, 2]), "not a JSON object"),
    (raw_frame({"v": [1, 2]}), "bare list"),
    (raw_frame({"v": {"~": "zz"}}), "unknown tag"),
    (raw_frame({"v": {"a": 1}}), "unknown tag"),
    (raw_frame({"v": {"~": "a", "dtype": "object", "shape": [1], "at": 0, "n": 8}}, b"\0" * 8), "dtype 'object'"),
    (raw_frame({"v": {"~": "a", "dtype": ">f8", "shape": [1], "at": 0, "n": 8}}, b"\0" * 8), "dtype '>f8'"),
    (raw_frame({"v": {"~": "a", "dtype": "float64", "shape": [2], "at": 0, "n": 8}}, b"\0" * 8), "needs 16 bytes"),
    (raw_frame({"v": {"~": "a", "dtype": "float64", "shape": [1], "at": 8, "n": 8}}, b"\0" * 8), "outside the payload"),
    (raw_frame({"v": {"~": "a", "dtype": "float64", "shape": [-1], "at": 0, "n": 8}}, b"\0" * 8), "shape"),
    (raw_frame({"v": {"~": "a", "dtype": "float64", "shape": [2**39, 2**39], "at": 0, "n": 8}}, b"\0" * 8),
     "needs"),
    (raw_frame({"v": {"~": "a", "dtype": "float64", "shape": [1] * 40, "at": 0, "n": 8}}, b"\0" * 8), "shape"),
    (raw_frame({"v": {"~": "g", "dtype": "float64", "v": "1e9999x"}}), "not a number"),
    (raw_frame({"v": {"~": "g", "dtype": "uint8", "v": 100000}}), "does not fit"),
    (raw_frame({"v": {"~": "h", "id": "x", "type": "T"}}), "handle"),
    (raw_frame({"v": {"~": "r", "name": "pad2d"}}), "not allowed in this direction"),
    (raw_frame({"v": {"~": "p", "name": "cube", "params": None}}), "not allowed in this direction"),
    (raw_frame({"v": {"~": "d", "v": [[{"~": "l", "v": []}, 1]]}}), "dict key"),
    (raw_frame({"v": {"~": "S", "v": [{"~": "l", "v": []}]}}), "Size of non-integers"),
])
def test_malformed_frames_are_refused_with_the_rule_they_break(frame, words):
    with pytest.raises(ProtocolError, match=words):
        read(frame)


def test_deep_nesting_is_refused_not_a_crash():
    deep = {"~": "l", "v": []}
    for _ in range(200):
        deep = {"~": "l", "v": [deep]}
    with pytest.raises(ProtocolError, match="nested"):
        read(raw_frame({"v": deep}))
    very_deep = b'{"v": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    with pytest.raises(ProtocolError):
        read(raw_frame(very_deep))


def test_sizes_beyond_the_limits_are_refused_before_reading():
    small = Limits(header_bytes=100, payload_bytes=1000, items=50)
    with pytest.raises(ProtocolError, match="header is"):
        protocol.read_prefix(struct.pack(">4sQQ", protocol.MAGIC, 10**12, 0), small)
    with pytest.raises(ProtocolError, match="payload is"):
        protocol.read_prefix(struct.pack(">4sQQ", protocol.MAGIC, 10, 10**12), small)
    many = raw_frame({"v": {"~": "l", "v": list(range(60))}})
    with pytest.raises(ProtocolError, match="more than 50 values"):
        read(many, Limits(items=50))
