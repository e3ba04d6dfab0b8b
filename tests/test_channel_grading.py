"""The judge's channel and reports attacked through the real ``grade`` command (a1, one run).

Each attack sits on the solution, so the honest work under it is full marks, and aims at a1's
``layout`` exercise (2 points): the exact score says whether it cost more than that exercise (a
deadline that did not hold, a worker that crashed) or recovered anything. The run's workers have a
small memory cap of their own (``$AUTOGRADER_JUDGE_MEMORY_MB``), which the solution grades under.

* a child forked by the notebook that takes the judge's socket first: refused, full marks;
* answers with the wrong id streamed without a pause, or one trickled a byte at a time, ignoring
  the interrupt: the exercise times out at its limit and the kernel is replaced;
* a frame declaring a payload past the limit: a protocol break, before anything is buffered;
* a legal 255 MiB answer that the worker's cap cannot hold twice: that exercise, with the reason;
* TeX in an exception's message: in the feedback page, only where MathJax does not look.
"""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder.grading.results import StudentResult

from .classes import CELL_TIMEOUT, Assignment
from .support import autograder_command, autograder_env
from .test_channel import GRAB_SOCKET

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")]

A1 = "a1_images_and_convolution"
JUDGE_MEMORY_MB = 760  # a1's worker holds ~300-400 MiB; a 255 MiB answer and its decoded copy do not fit
TEX = r"$\int_0^1 x\,dx$ and \(a^2\) \begin{equation}e\end{equation}"
IMPORTS = "import socket, struct, sys, time"

# Each attack runs first in the exercise's functions, and only while the judge is calling them
# (the agent's socket is a local of Agent.serve, up the stack): the notebook's own run goes on.


# The agent's socket, found up the stack from inside the student's function; the attack's body runs
# only where it is found (indented under the ``if``).
FIND = """_f = sys._getframe()
while _f is not None and not isinstance(_f.f_locals.get('sock'), socket.socket):
    _f = _f.f_back
if _f is not None:
    _s = _f.f_locals['sock']
"""

FLOOD = "from autograder import protocol\n" + FIND + """    _frame = protocol.encode({'id': -1, 'ok': True}, result=0)
    while True:
        try:
            _s.sendall(_frame)
        except KeyboardInterrupt:
            pass"""

TRICKLE = FIND + """    _s.sendall(struct.pack('>4sQQ', b'AGP1', 10**6, 0))
    while True:
        try:
            _s.send(b' ')
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass"""

DECLARED = FIND + """    _s.sendall(struct.pack('>4sQQ', b'AGP1', 2, 300 * 2**20) + b'{}')
    for _ in range(300):
        _s.sendall(bytes(2**20))
    time.sleep(60)"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, dict[str, StudentResult], Assignment]:
    a = Assignment(A1)
    subs, out = tmp_path_factory.mktemp("channel-subs"), tmp_path_factory.mktemp("channel-out")
    cell = "layout_code"
    assert a.target == "layout"

    def attack(prefix: str, imports: str = IMPORTS):
        return a.nb({cell: imports + "\n\n" + a.body(cell, prefix)})

    notebooks = {
        "correct": a.nb(),
        "fork_takes_socket": a.add_cell(a.nb(), GRAB_SOCKET, after=cell),
        "reply_flood": attack(FLOOD),
        "reply_trickle": attack(TRICKLE),
        "declared_huge_frame": attack(DECLARED),
        "huge_answer": attack("import numpy as np\nreturn np.zeros(255 * 2**20, np.uint8)", imports=""),
        "tex_in_exception": attack(f"raise ValueError({TEX!r})", imports=""),
    }
    for student, nb in notebooks.items():
        a.file(nb)(subs / student)
    env = {**autograder_env(), "AUTOGRADER_JUDGE_MEMORY_MB": str(JUDGE_MEMORY_MB)}
    proc = subprocess.run([*autograder_command("grade", A1, str(subs), "--out", str(out), "--quiet", "--workers", "2",
                                               "--cell-timeout", str(CELL_TIMEOUT[A1]))],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {p.stem: StudentResult.load(p) for p in (out / "results" / A1).glob("*.json")}
    assert set(results) == set(notebooks)
    return out, results, a


def lost(result: StudentResult) -> dict[str, str]:
    return {c.grade_id: c.reason for c in result.lost()}


def test_the_solution_grades_in_full_under_the_workers_memory_cap(graded):
    _, results, a = graded
    assert results["correct"].score == a.max, lost(results["correct"])


def test_a_forked_child_cannot_take_the_judges_socket(graded):
    _, results, a = graded
    assert results["fork_takes_socket"].score == a.max, lost(results["fork_takes_socket"])


@pytest.mark.parametrize("student", ["reply_flood", "reply_trickle"])
def test_a_kernel_streaming_on_the_socket_is_stopped_at_the_limit(graded, student):
    """It costs its exercise, and the submission takes about the solution's time plus one limit,
    one grace period and a fresh kernel (it used to hold the worker as long as it streamed)."""
    _, results, a = graded
    r = results[student]
    assert r.score == a.max - a.points["layout"], lost(r)
    assert set(lost(r)) == {"layout"}
    assert lost(r)["layout"].startswith(f"timed out: the code ran past the exercise's time limit "
                                        f"({CELL_TIMEOUT[A1]} s)"), lost(r)
    assert r.seconds < results["correct"].seconds + CELL_TIMEOUT[A1] + 5 + 30, (r.seconds, results["correct"].seconds)


def test_a_frame_declared_past_the_limit_is_refused_from_its_prefix(graded):
    _, results, a = graded
    r = results["declared_huge_frame"]
    assert r.score == a.max - a.points["layout"]
    assert lost(r) == {"layout": "the kernel's answer broke the grader's protocol (the payload is 314,572,800 bytes "
                                 "(limit 268,435,456))"}


def test_an_answer_past_the_workers_memory_cap_costs_its_exercise(graded):
    _, results, a = graded
    r = results["huge_answer"]
    assert r.score == a.max - a.points["layout"]
    assert lost(r) == {"layout": f"the kernel's answer (255 MiB) needed more memory than the grader may use "
                                 f"(its cap: {JUDGE_MEMORY_MB} MiB); return less data"}


class _Text(HTMLParser):
    """Every text node of a page with whether MathJax 2 would read it: not inside script, style,
    pre, code or an element of class tex2jax_ignore."""

    SKIPPED = {"script", "style", "pre", "code", "textarea"}

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []  # per open element: whether MathJax skips it
        self.texts: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        skip = tag in self.SKIPPED or "tex2jax_ignore" in classes
        if tag not in ("br", "img", "meta", "link", "input", "hr"):
            self.stack.append(skip)

    def handle_endtag(self, tag):
        if tag not in ("br", "img", "meta", "link", "input", "hr") and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        self.texts.append((data, not any(self.stack)))


def test_tex_in_an_exception_is_shown_as_typed_and_never_typeset(graded):
    """The message is in the grade and the page as typed — in the report cell and the test cell's
    output — and none of it lies where MathJax typesets."""
    out, results, a = graded
    r = results["tex_in_exception"]
    assert r.score == a.max - a.points["layout"]
    assert TEX in lost(r)["layout"]
    page = (out / "feedback" / "tex_in_exception" / A1 / f"{A1}.html").read_text()
    parser = _Text()
    parser.feed(page)
    text = "".join(t for t, _ in parser.texts)
    assert text.count(TEX) >= 2, "the message, as typed, in the report and in the test cell's output"
    typeset = [t for t, read in parser.texts if read and ("\\int" in t or "\\(a^2" in t or "begin{equation}" in t)]
    assert typeset == [], typeset
