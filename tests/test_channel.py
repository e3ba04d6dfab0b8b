"""The judge's channel to a kernel, attacked from the kernel: every deadline holds whatever the
kernel sends, frames are bounded before they are buffered, only the kernel's own process is answered.

Each test starts a real sandboxed kernel (bubblewrap where it works here), runs the cells that set
up the attack, then has the judge (:class:`autograder.grading.judge.AgentChannel`) call the
student's function the way a check does, and asserts exactly how that call ends and how long it
took. The same attacks go through the real ``grade`` command in ``tests/test_channel_grading.py``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autograder.kernel import protocol
from autograder.grading import sandbox
from autograder.grading.execute import GRACE_S, OK, KernelSession
from autograder.grading.judge import AgentChannel, kernel_process
from autograder.grading.sandbox import RLIMITS_ONLY, KernelSite, Limits
from autograder.kernel.student import KernelLost, NotData, RemoteName

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

LIMITS = Limits(memory_mb=3072, output_kb=64, file_mb=8, processes=32)
LIMIT_S = 2.0  # the exercise's time limit in these tests

# Where the agent's socket is, from inside the student's function (it runs under Agent.serve).
FIND_SOCKET = """import sys, socket, struct, time
def _agent_socket():
    f = sys._getframe()
    while f is not None and not isinstance(f.f_locals.get('sock'), socket.socket):
        f = f.f_back
    return f.f_locals['sock']
"""

# A child process that takes the judge's socket whenever it appears (and sends it a forged frame).
GRAB_SOCKET = """import os, socket, time
if os.fork() == 0:
    try:
        held, stop = [], time.time() + 90
        while time.time() < stop:
            try:
                c = socket.socket(socket.AF_UNIX)
                c.connect('j.sock')
                c.sendall(b'AGP1' + bytes(16))
                held.append(c)
            except OSError:
                time.sleep(0.001)
    finally:
        os._exit(0)
"""


@contextlib.contextmanager
def judged(tmp_path: Path, *cells: str):
    """A kernel that ran ``cells``, and the judge's channel to it with the clock started."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o700)
    session = KernelSession(scratch, LIMITS, KernelSite("a1_images_and_convolution"), LIMIT_S,
                            time.monotonic() + 300)
    try:
        for i, code in enumerate(cells):
            run = session.run(i, code)
            assert run.status == OK, run.reason
        channel = AgentChannel(session)
        channel.begin(LIMIT_S)
        channel.open()
        yield channel
    finally:
        session.close()


def lost(channel: AgentChannel, *args) -> tuple[str, float]:
    """How calling the notebook's ``f`` ends (it must lose the kernel), and how long it took."""
    start = time.monotonic()
    with pytest.raises(KernelLost) as info:
        RemoteName(channel, "f")(*args)
    return str(info.value), time.monotonic() - start


def rss_mib() -> float:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024


def test_replies_with_wrong_ids_without_a_pause_cannot_outrun_the_clock(tmp_path):
    """A kernel that streams well-formed answers to no request, ignoring the interrupt, loses its
    kernel at the limit plus the grace period (it used to hold the judge as long as it streamed)."""
    flood = FIND_SOCKET + """
def f(x):
    from autograder import protocol
    s, frame = _agent_socket(), protocol.encode({'id': -1, 'ok': True}, result=0)
    while True:
        try:
            s.sendall(frame)
        except KeyboardInterrupt:
            pass
"""
    with judged(tmp_path, flood) as channel:
        why, seconds = lost(channel, 1)
    assert "timed out: the code ran past the exercise's time limit (2 s)" in why, why
    assert seconds < LIMIT_S + GRACE_S + 10, seconds  # bounded (it was not), with room for a busy machine


def test_an_answer_trickled_a_byte_at_a_time_cannot_outrun_the_clock(tmp_path):
    trickle = FIND_SOCKET + """
def f(x):
    s = _agent_socket()
    s.sendall(struct.pack('>4sQQ', b'AGP1', 10**6, 0))
    while True:
        try:
            s.send(b' ')
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass
"""
    with judged(tmp_path, trickle) as channel:
        why, seconds = lost(channel, 1)
    assert why == ("timed out: the code ran past the exercise's time limit (2 s) and ignored the interrupt, "
                   "so its kernel was replaced"), why
    assert seconds < LIMIT_S + GRACE_S + 10, seconds  # bounded (it was not), with room for a busy machine


def test_output_flooded_under_another_cells_id_cannot_outrun_the_clock(tmp_path):
    """A thread started by an earlier cell prints without a pause (its messages carry that cell's
    id, which the judge skips) while the function ignores the interrupt."""
    printer = ("import threading, time\ndef _spam():\n    time.sleep(1)\n    while True:\n        print('x' * 1000)\n"
               "threading.Thread(target=_spam, daemon=True).start()")
    stubborn = ("import time\ndef f(x):\n    while True:\n        try:\n            time.sleep(0.001)\n"
                "        except KeyboardInterrupt:\n            pass\n")
    with judged(tmp_path, stubborn, printer) as channel:
        why, seconds = lost(channel, 1)
    assert "ignored the interrupt, so its kernel was replaced" in why, why
    assert seconds < LIMIT_S + GRACE_S + 10, seconds  # bounded (it was not), with room for a busy machine


def test_a_frame_declared_larger_than_the_judge_reads_is_refused_before_it_is_buffered(tmp_path):
    """A 300 MiB payload, declared and sent: the judge refuses it from its 20-byte prefix, without
    holding any of it."""
    big = FIND_SOCKET + """
def f(x):
    s = _agent_socket()
    s.sendall(struct.pack('>4sQQ', b'AGP1', 2, 300 * 2**20) + b'{}')
    block = bytes(2**20)
    for _ in range(300):
        s.sendall(block)
    time.sleep(60)
"""
    with judged(tmp_path, big) as channel:
        before = rss_mib()
        why, seconds = lost(channel, 1)
        grew = rss_mib() - before
    assert why == ("the kernel's answer broke the grader's protocol (the payload is 314,572,800 bytes "
                   "(limit 268,435,456))"), why
    assert seconds < 3 and grew < 64, (seconds, grew)


def test_an_honest_answer_too_large_to_cross_is_refused_with_a_reason(tmp_path):
    """An honest but oversized result is refused in the kernel with a reason the student can act
    on; one within the limit arrives whole."""
    code = "import numpy as np\ndef f(n):\n    return np.arange(n, dtype=np.float64)\n"
    with judged(tmp_path, code) as channel:
        channel.begin(120)  # hundreds of MiB take a while on a busy machine
        within = RemoteName(channel, "f")(12 * 2**20)  # 96 MiB
        assert within.shape == (12 * 2**20,) and within[-1] == 12 * 2**20 - 1
        with pytest.raises(NotData) as info:
            RemoteName(channel, "f")(36 * 2**20)  # 288 MiB
    assert str(info.value) == ("the answer is 288 MiB of arrays, more than the 256 MiB a reply may carry; "
                               "return less data"), info.value


def test_a_long_list_is_refused_by_the_header_limit_with_a_reason(tmp_path):
    code = "def f(n):\n    return [0.123456789] * n\n"
    with judged(tmp_path, code) as channel:
        channel.begin(120)
        assert RemoteName(channel, "f")(1000) == [0.123456789] * 1000
        with pytest.raises(NotData) as info:
            RemoteName(channel, "f")(1_500_000)
    assert str(info.value) == ("the answer holds 17 MiB of numbers and strings outside arrays, more than the "
                               "16 MiB a reply may carry; return an array instead of lists"), info.value


@pytest.mark.parametrize("boxed", [True, False], ids=["bubblewrap", "rlimits-only"])
def test_only_the_kernels_own_process_is_answered(tmp_path, monkeypatch, boxed):
    """A child forked by the notebook takes the judge's socket as soon as it appears: it is refused,
    and the kernel's agent answers (it used to be the child, whose forged frame lost the kernel)."""
    if boxed and sandbox.isolation() != sandbox.BUBBLEWRAP:
        pytest.skip("bubblewrap cannot make namespaces here")
    if not boxed:
        monkeypatch.setattr(sandbox, "isolation", lambda: RLIMITS_ONLY)
    code = "import os\ndef f(x):\n    return x + 1\ndef pid():\n    return os.getpid()\n"
    with judged(tmp_path, code, GRAB_SOCKET) as channel:
        assert RemoteName(channel, "f")(41) == 42  # the child tried first (hundreds of times, as a rule)
        # the process the judge takes for the kernel is the one the agent's cell runs in
        kernel = kernel_process(channel.kernel.km.provisioner.process.pid)
        status = Path(f"/proc/{kernel}/status").read_text()
        nspid = next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1]
        assert int(nspid) == RemoteName(channel, "pid")()
        channel.close()
        channel.begin(LIMIT_S)
        channel.open()  # the next test cell: answered again
        assert RemoteName(channel, "f")(np.float64(1.5)) == 2.5
        # whatever the race between the child and the agent did, a connection from a process other
        # than the kernel's is refused: this one comes from the test's own process
        with socket.socket(socket.AF_UNIX) as listener, socket.socket(socket.AF_UNIX) as other:
            listener.bind(str(tmp_path / "other.sock"))
            listener.listen(1)
            other.connect(str(tmp_path / "other.sock"))
            refused, conn = channel.refused, channel.conn
            assert channel._accept(listener) is False
            assert channel.refused == refused + 1 and channel.conn is conn


def test_frame_limits_hold_on_both_ends():
    """What the agent may send is what the judge reads: one table, protocol.FROM_KERNEL."""
    limits = protocol.FROM_KERNEL
    assert limits.payload_bytes == 256 * 2**20 and limits.header_bytes == 16 * 2**20
    assert AgentChannel.__init__.__defaults__[0] is limits
    with pytest.raises(protocol.ProtocolError, match="limit"):
        protocol.read_prefix(protocol.frame({}, [], limits.payload_bytes + 1)[:protocol.PREFIX_BYTES], limits)
