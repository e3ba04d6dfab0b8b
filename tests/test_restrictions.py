"""The only thing read from a student's code: a function the exercise itself forbids.

Each case assembles a real submission (the solution with one edit) exactly as the grader does and
asks which exercises its restrictions charge. Honest habits — imports, prints, warnings, helpers,
scratch cells, a scratch cell that compares with the forbidden function — must charge nothing; a
forbidden function must be found however it is reached (every spelling of issue 18 on every kind of
restricted exercise), or the code charged as "cannot be checked", with a message naming the cell
and the line, and cost only the exercises whose code it reaches.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from autograder.grading import restrictions
from autograder.grading.assemble import assemble
from autograder.grading.notebooks import nbgrader_meta, solution_sources, student_version
from autograder.profiles import profile

from .support import COURSE, release_nb, source_nb

A1, A4 = "a1_images_and_convolution", "a4_lenet"
SOL = {A1: solution_sources(source_nb(A1)), A4: solution_sources(source_nb(A4))}
PAD = SOL[A1]["pad2d_code"]
BN = SOL[A4]["batchnorm2d_code"]
NAMES = "must be written without"


def charged(assignment: str, answers: dict[str, str] | None = None, added: list[str] = (),
            after: str | None = None) -> dict[str, str]:
    """What the restrictions charge: the solution with ``answers`` in place, and ``added`` cells
    (after the solution cell ``after``, else near the top)."""
    nb = student_version(release_nb(assignment), source_nb(assignment), answers or {})
    at = next((i + 1 for i, c in enumerate(nb.cells) if nbgrader_meta(c).get("grade_id") == after), 3)
    for i, code in enumerate(added):
        nb.cells.insert(at + i, nbformat.v4.new_code_cell(code))
    assembled, _ = assemble(source_nb(assignment), nb)
    return restrictions.check(assembled, assignment)


def inside(code: str, prefix: str, top: str = "") -> str:
    """``code`` with ``prefix`` run first inside its first function, and ``top`` above it."""
    lines = code.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("def ") and line.rstrip().endswith(":"))
    j = i + 1  # after the docstring, if any
    if lines[j].strip().startswith('"""'):
        if lines[j].count('"""') == 1:
            while '"""' not in lines[j + 1]:
                j += 1
            j += 1
        j += 1
    body = [f"    {p}" for p in prefix.splitlines()]
    return "\n".join(([top, ""] if top else []) + lines[:j] + body + lines[j:])


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_solutions_and_releases_break_no_restriction(assignment):
    assert charged(assignment) == {}
    assembled, _ = assemble(source_nb(assignment), release_nb(assignment))
    assert restrictions.check(assembled, assignment) == {}


# ---------------------------------------------------------------------------------------------
# Honest habits
# ---------------------------------------------------------------------------------------------

HABITS = ["import os, sys, warnings, gc, types\nprint(os.cpu_count(), sys.version, file=sys.stderr)\n"
          "warnings.warn('just saying')\ngc.collect()\ncfg = types.SimpleNamespace(lr=0.1)",
          "%timeit -n 1 -r 1 sum(range(3))\n%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])",
          "%%time\ntotal = sum(range(10))\nprint(f'pad={total}', 'numpy.pad is not used here')",
          "!ls\n%pip --version\nfiles = !ls\n%load_ext autoreload\n%autoreload 2",
          "from math import *\nfrom collections import defaultdict\nseen = defaultdict(list)",
          "def pad(a, k):\n    return a  # my own helper called pad\n\nscratch = pad(1, 1)"]


@pytest.mark.parametrize("assignment", [A1, A4])
def test_honest_habits_cost_nothing(assignment):
    """import os, prints, warnings, gc.collect(), %timeit, %%time, a shell line, a star import of
    math, a helper that happens to be called pad: no charge anywhere."""
    assert charged(assignment, added=HABITS) == {}


def test_a_scratch_cell_that_compares_with_np_pad_costs_nothing():
    check = "x = np.arange(12.0).reshape(3, 4)\nprint(np.allclose(pad2d(x, 1), np.pad(x, 1)))"
    assert charged(A1, added=[check], after="pad2d_code") == {}


def test_a_scratch_cell_that_checks_with_autograd_costs_nothing():
    check = ("xt = torch.randn(2, 3, 4, 4, requires_grad=True)\nw = torch.ones(3, requires_grad=True)\n"
             "out = F.batch_norm(xt, None, None, w, torch.zeros(3), training=True)\n"
             "dout = torch.randn_like(out)\nout.backward(dout)\n"
             "dx, dw, db = batchnorm2d_backward(dout, xt.detach(), w.detach())\n"
             "print(torch.allclose(dx, xt.grad, atol=1e-5), xt.grad_fn)\n"
             "torch.backends.cudnn.deterministic = True")
    assert charged(A4, added=[check], after="batchnorm2d_backward_code") == {}


def test_docstrings_and_messages_that_mention_the_function_cost_nothing():
    body = inside(PAD, "if np.ndim(image) < 2:\n    raise ValueError(f'pad2d, unlike np.pad, needs 2 axes; pad={pad}')")
    body = body.replace('"""Pad the last two axes of image.', '"""Pad the last two axes of image, like np.pad.')
    assert charged(A1, {"pad2d_code": body}) == {}


# ---------------------------------------------------------------------------------------------
# Every spelling, on every kind of restricted exercise
# ---------------------------------------------------------------------------------------------

# exercise -> (its cell, the module, the name it is imported as, the forbidden function)
TARGETS = {
    "pad2d": (A1, "pad2d_code", "numpy", "np", "pad"),
    "batchnorm2d": (A4, "batchnorm2d_code", "torch.nn.functional", "F", "batch_norm"),
    "batchnorm2d_backward": (A4, "batchnorm2d_backward_code", "torch", "torch", "enable_grad"),
    "augment": (A4, "augment_code", "autograder.datasets", "datasets", "perturb_digits"),
}

# (spelling, code above the answer's function, first lines inside it, an added cell, words the reason has)
SPELLINGS = [
    ("attribute", "", "_f = {alias}.{name}", None, "uses .{name}"),
    ("star import", "from {module} import *\n_f = {name}", "", None, "imports * from {module}, which brings in"),
    ("star import in another cell", "_f = {name}", "", "from {module} import *", "defined in added cell"),
    ("attribute store in another cell", "", "_f = {alias}.helper_fn", "{alias}.helper_fn = {alias}.{name}",
     "uses helper_fn, defined in added cell"),
    ("attribute store through an alias", "", "_f = {alias}.helper_fn",
     "import {module} as _n\n_n.helper_fn = getattr(_n, '{name}')", "uses helper_fn, defined in added cell"),
    ("attrgetter", "import operator", "_f = operator.attrgetter('{name}')({alias})", None,
     "reaches {name} through attrgetter"),
    ("attrgetter, computed", "import operator", "_f = operator.attrgetter('{h1}' + '{h2}')({alias})", None,
     "calls attrgetter with a computed name"),
    ("methodcaller, aliased", "from operator import methodcaller as _mc", "_f = _mc('{h1}' + '{h2}')", None,
     "calls methodcaller with a computed name"),
    ("getattr, constant", "", "_f = getattr({alias}, '{name}')", None, "reaches {name} through getattr"),
    ("getattr, computed", "", "_f = getattr({alias}, '{h1}' + '{h2}')", None, "calls getattr with a computed name"),
    ("getattr by another name", "", "_f = _g({alias}, '{h1}' + '{h2}')", "_g = getattr",
     "uses getattr other than as getattr(object, 'name')"),
    ("setattr, computed, in another cell", "", "_f = {alias}.helper_fn",
     "setattr({alias}, 'helper' + '_fn', 0)", "can change without naming them"),
    ("exec in another cell", "", "_f = helper_fn", "exec('helper_fn = 0')", "calls exec"),
    ("eval", "", "_f = eval('{alias}' + '.x')", None, "calls eval"),
    ("compile", "", "_c = compile('0', 'x', 'eval')", None, "calls compile"),
    ("__import__", "", "_m = __import__('{module}')", None, "calls __import__"),
    ("importlib", "import importlib", "_m = importlib.import_module('{module}')", None,
     "uses importlib.import_module"),
    ("globals() write in another cell", "", "_f = helper_fn", "globals()['helper' + '_fn'] = 0", "calls globals"),
    ("vars() write in another cell", "", "_f = {alias}.helper_fn", "vars({alias})['helper_fn'] = 0", "calls vars"),
    ("string constant", "", "_n = '{name}'", None, "names {name} in the string"),
    ("dotted string", "", "_n = '{module}.{name}'", None, "names {name} in the string"),
    ("bare name nobody defines", "_f = {name}", "", None, "uses {name}, which no cell defines"),
    ("aliased import", "from {module} import {name} as _q", "_f = _q", None, "imports {name} from {module}"),
    ("alias defined in another cell", "", "_f = _q", "import {module} as _n\n_q = _n.{name}",
     "uses _q, defined in added cell"),
    ("helper in another cell", "", "_f = _helper()", "def _helper():\n    return {alias}.{name}",
     "uses _helper, defined in added cell"),
    ("sys.modules", "import sys", "_m = sys.modules['{module}']", None, "uses sys.modules"),
    ("a module the notebook wrote", "import my_helpers", "_f = my_helpers.fill", None,
     "a module the course's environment does not have"),
    ("star import that cannot be listed", "from json import *", "_f = loads", None, "whose names cannot be listed"),
    ("frame globals", "import sys", "_f = sys._getframe(0).f_globals", None, "sys._getframe"),
    ("a magic that runs code", "", "_f = helper_fn", "%run helpers.py", "uses get_ipython"),
    ("sys.path changed in another cell", "", "_f = helper_fn", "import sys\nsys.path.insert(0, '')",
     "changes sys.path, so which module an import loads cannot be checked"),
]


@pytest.mark.parametrize("exercise", list(TARGETS))
@pytest.mark.parametrize("spelling, top, first, other, words", SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_every_spelling_is_resolved_or_charged(exercise, spelling, top, first, other, words):
    """Is the forbidden function (or code that hides which function it reaches) found, with the
    cell and the line named, and charged to this exercise and only to those its code reaches?"""
    assignment, cell, module, alias, name = TARGETS[exercise]
    fmt = dict(module=module, alias=alias, name=name, h1=name[:2], h2=name[2:])
    answer = inside(SOL[assignment][cell], first.format(**fmt) or "pass", top.format(**fmt))
    added = [other.format(**fmt)] if other else []
    got = charged(assignment, {cell: answer}, added=added, after=cell)
    assert exercise in got, (spelling, got)
    reason = got[exercise]
    assert words.format(**fmt) in reason, (spelling, reason)
    assert re.search(r"(_code|added cell \d+): line \d+", reason), reason  # the cell and the line
    assert set(got) <= set(profile(assignment).restrictions)
    if other is None and spelling not in ("a module the notebook wrote", "star import that cannot be listed",
                                          "eval", "compile", "__import__", "importlib"):
        # a name read in this answer costs this exercise, and an exercise whose code calls it
        callers = {"augment": {"lenet_training"}}.get(exercise, set())
        assert set(got) - {exercise} <= callers, (spelling, got)


def test_torch_kernels_outside_its_python_api_are_charged():
    """torch.ops.aten (batch norm's backward is one), torch._C and torch._VF, however imported."""
    for edit, words in [("_k = torch.ops.aten.native_batch_norm_backward", "torch.ops"),
                        ("_k = torch.ops.aten.mul", "torch.ops"),
                        ("_k = torch._C._nn", "torch._C"),
                        ("_k = torch._VF", "torch._VF"),
                        ("from torch import _VF as _v", "imports torch._VF"),
                        ("import torch._C as _c", "imports torch._C"),
                        ("_k = getattr(torch, '_C')", "reaches _C of torch")]:
        for exercise in ("batchnorm2d", "batchnorm2d_backward"):
            _, cell, *_ = TARGETS[exercise]
            got = charged(A4, {cell: inside(SOL[A4][cell], edit)})
            # the first finding may be the name itself (.native_batch_norm_backward) or the part of torch
            assert set(got) == {exercise} and (words in got[exercise] or "uses .native_batch_norm" in got[exercise]), \
                (edit, got)


@pytest.mark.parametrize("edit, words", [
    ("_ = np.pad(image, 0)", "uses .pad"),
    ("import numpy.lib.arraypad", "imports numpy.lib.arraypad"),
    ("import numpy.lib._arraypad_impl as _ap", "imports numpy.lib._arraypad_impl"),
    ("from numpy.lib import _arraypad_impl", "imports _arraypad_impl from numpy.lib"),
    ("_ = np.lib._arraypad_impl._set_reflect_both", "uses ._arraypad_impl"),
    ("_ = np.__dict__['p' + 'ad']", "uses .__dict__"),
    ("_ = vars(np)['pad']", "calls vars"),
    ("_ = np.pad.__wrapped__", "uses .pad"),
    ("_ = np._core.overrides", "uses np._core"),
    ("match np:\n    case object(pad=_f):\n        pass", "reaches pad through a match pattern"),
    ("import string\n_f = string.Formatter().get_field('0.p' + 'ad', (np,), {})", "uses .get_field"),
])
def test_numpy_pad_is_found_however_it_is_named(edit, words):
    got = charged(A1, {"pad2d_code": inside(PAD, edit)})
    assert set(got) == {"pad2d"} and words in got["pad2d"], got


def test_a_module_alias_reaches_the_function_through_any_name():
    """import numpy as n; f = n.pad in one cell, f(...) in the answer."""
    got = charged(A1, {"pad2d_code": inside(PAD, "_ = f")}, added=["import numpy as n\nf = n.pad"])
    assert set(got) == {"pad2d"} and "uses f, defined in added cell" in got["pad2d"]


def test_a_chain_of_cells_is_followed():
    """The answer uses b, defined with a, defined with np.pad two cells away."""
    got = charged(A1, {"pad2d_code": inside(PAD, "_ = b")}, added=["a = [np.pad]", "b = a[0]"])
    assert "uses b, defined in added cell" in got["pad2d"] and "which uses a" in got["pad2d"], got


def test_an_object_changed_in_another_cell_is_followed():
    """TABLE = {} in one cell, TABLE['z'] = np.pad in another: the answer reading TABLE is charged."""
    got = charged(A1, {"pad2d_code": inside(PAD, "_ = TABLE['z']")}, added=["TABLE = {}", "TABLE['z'] = np.pad"])
    assert set(got) == {"pad2d"} and "uses TABLE" in got["pad2d"], got
    got = charged(A1, {"pad2d_code": inside(PAD, "_ = FNS[0]")}, added=["FNS = []", "FNS.append(np.pad)"])
    assert set(got) == {"pad2d"} and "uses FNS" in got["pad2d"], got


def test_what_the_answer_does_not_use_costs_nothing():
    """np.pad in a cell whose names pad2d never reads, an attribute stored that it never reads."""
    assert charged(A1, added=["def _padded(image, p):\n    return np.pad(image, p)"]) == {}
    assert charged(A1, added=["np.helper_fn = np.pad"]) == {}
    assert charged(A4, added=["from torch.nn.functional import *\nprint(batch_norm)"]) == {}


def test_a_helper_with_np_pad_charges_the_exercise_that_uses_it_and_no_other():
    helper = "def _padded(image, p):\n    return np.pad(image, p)"
    uses = PAD.replace("def pad2d(", "_unused = _padded\n\n\ndef pad2d(", 1)
    got = charged(A1, {"pad2d_code": uses}, added=[helper])
    assert set(got) == {"pad2d"} and "uses _padded, defined in added cell" in got["pad2d"]


def test_batchnorm2d_may_not_call_any_of_torchs_normalisations():
    for edit in ("_ = F.batch_norm(x, running_mean, running_var)", "_ = nn.BatchNorm2d(3)(x)",
                 "_ = torch.native_batch_norm", "_ = torch.cudnn_batch_norm", "_ = nn.LazyInstanceNorm2d",
                 "_ = torch.nn.modules.batchnorm", "_ = F.instance_norm", "_ = torch.ao.nn.intrinsic.ConvBn2d"):
        got = charged(A4, {"batchnorm2d_code": inside(BN, edit)})
        assert set(got) == {"batchnorm2d"}, (edit, got)


BN_BACKWARD = SOL[A4]["batchnorm2d_backward_code"]
_AUTOGRAD = ("xg = x.detach().requires_grad_()\n"
             "out, _, _ = batchnorm2d_forward(xg, weight, weight, weight, weight, True, eps=eps)\n"
             "(dx,) = torch.autograd.grad(out, (xg,), dout)")


@pytest.mark.parametrize("edit, words", [
    (_AUTOGRAD, "uses .requires_grad_"),
    ("x.requires_grad = True\n(x * dout).sum().backward()", "uses .requires_grad"),
    ("from torch.func import vjp", "imports vjp from torch.func"),
    ("_w = torch.zeros(3, requires_grad=True)", "passes requires_grad="),
    ("_fn = (x * nn.Parameter(weight)).grad_fn", "uses .grad_fn"),
    ("_k = torch.batch_norm_backward_elemt", "uses .batch_norm_backward_elemt"),
])
def test_batchnorm2d_backward_may_not_use_autograd(edit, words):
    got = charged(A4, {"batchnorm2d_backward_code": inside(BN_BACKWARD, edit)})
    assert set(got) == {"batchnorm2d_backward"} and words in got["batchnorm2d_backward"], got


def test_augment_may_not_call_the_graders_perturbation():
    aug = SOL[A4]["augment_code"]
    body = aug.replace("    return out.clamp(0, 1)\n",
                       "    return torch.as_tensor(datasets.perturb_digits(x.numpy(), 0), dtype=x.dtype)\n", 1)
    assert body != aug
    got = charged(A4, {"augment_code": body})
    assert set(got) == {"augment"} and "uses .perturb_digits" in got["augment"], got


def test_the_explanation_names_the_rule_the_line_and_what_to_do():
    text = restrictions.explain("pad2d", "pad2d_code: line 9: uses .pad", A1)
    assert text.startswith("pad2d: this exercise must be written without numpy.pad — pad2d_code: line 9")
    assert "Build the padded array yourself" in text and "scores 0" in text


def test_code_on_a_magic_line_is_read():
    """%%timeit's setup statement runs: an attribute stored there reaches the answer."""
    got = charged(A1, {"pad2d_code": inside(PAD, "_ = np.helper_fn")},
                  added=["%%timeit -n 1 np.helper_fn = np.pad\nx = 1"])
    assert set(got) == {"pad2d"} and "uses helper_fn, defined in added cell" in got["pad2d"], got


@pytest.mark.parametrize("assignment", [a for a in COURSE.assignment_ids() if profile(a).restrictions])
def test_catalogued_wrong_answers_are_charged_only_where_they_reach_for_the_forbidden(assignment):
    """Does a realistic bug (the catalogue's wrong answers) cost nothing through the restrictions?"""
    from autograder import catalogue

    sol = SOL.get(assignment) or solution_sources(source_nb(assignment))
    for wa in catalogue.load(assignment).WRONG_ANSWERS:
        got = charged(assignment, {wa.cell: wa.apply(sol[wa.cell])})
        assert not got, (wa.id, got)
