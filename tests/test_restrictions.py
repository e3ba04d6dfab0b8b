"""The only thing read from a student's code: a function the exercise itself forbids.

Each case assembles a real submission (the solution with one edit) exactly as the grader does and
asks which exercises its restrictions charge. Honest habits — imports, prints, warnings, helpers,
scratch cells — must charge nothing; a forbidden function must be found however it is reached by
name, and cost only its own exercise.
"""

from __future__ import annotations

import nbformat
import pytest

from autograder.grading import restrictions
from autograder.grading.assemble import assemble
from autograder.grading.notebooks import solution_sources, student_version

from .support import COURSE, release_nb, source_nb

A1, A4 = "a1_images_and_convolution", "a4_lenet"
PAD = solution_sources(source_nb(A1))["pad2d_code"]
BN = solution_sources(source_nb(A4))["batchnorm2d_code"]


def charged(assignment: str, answers: dict[str, str] | None = None, added: list[str] = ()) -> dict[str, str]:
    nb = student_version(release_nb(assignment), source_nb(assignment), answers or {})
    for i, code in enumerate(added):
        nb.cells.insert(3 + i, nbformat.v4.new_code_cell(code))
    assembled, _ = assemble(source_nb(assignment), nb)
    return restrictions.check(assembled, assignment)


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_solutions_and_releases_break_no_restriction(assignment):
    assert charged(assignment) == {}
    assembled, _ = assemble(source_nb(assignment), release_nb(assignment))
    assert restrictions.check(assembled, assignment) == {}


def test_honest_habits_cost_nothing():
    """import os, prints, warnings, %timeit, a helper and a scratch cell: no charge anywhere."""
    habits = ["import os, sys, warnings\nprint(os.cpu_count(), sys.version)\nwarnings.warn('just saying')",
              "%timeit -n 1 np.zeros(3)\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])",
              "def pad(a, k):\n    return a  # my own helper called pad\n\nscratch = pad(np.ones(2), 1)"]
    assert charged(A1, added=habits) == {}


@pytest.mark.parametrize("prefix, line", [
    ("_ = np.pad(image, 0)", "uses .pad"),
    ("from numpy import pad as _p", "imports pad from numpy"),
    ("_ = getattr(np, 'pad')", "reaches pad through getattr"),
    ("_ = getattr(np, 'p' + 'ad')", "calls getattr, which hides"),
    ("_ = np.__dict__['pad']", "uses .__dict__"),
    ("_ = __import__('numpy')", "calls __import__"),
    ("import numpy.lib._arraypad_impl as _ap", "imports numpy.lib._arraypad_impl"),
    ("_ = np.lib.arraypad._pad_simple", "uses ._pad_simple"),
])
def test_numpy_pad_is_found_however_it_is_named(prefix, line):
    anchor = "out = np.zeros("
    assert PAD.count(anchor) == 1
    got = charged(A1, {"pad2d_code": PAD.replace(anchor, f"{prefix}; {anchor}", 1)})
    assert set(got) == {"pad2d"} and line in got["pad2d"], got


def test_a_helper_with_np_pad_charges_the_exercise_that_uses_it_and_no_other():
    helper = "def _padded(image, p):\n    return np.pad(image, p)"
    uses = PAD.replace("def pad2d(", "_unused = _padded\n\n\ndef pad2d(", 1)
    got = charged(A1, {"pad2d_code": uses}, added=[helper])
    assert set(got) == {"pad2d"} and "uses _padded, defined in added cell" in got["pad2d"]
    assert charged(A1, added=[helper]) == {}  # defined, never used by pad2d


def test_batchnorm2d_may_not_call_torchs_batch_norm():
    for edit in ("F.batch_norm(x, running_mean, running_var)", "nn.BatchNorm2d(3)(x)"):
        body = BN.replace("    C = x.shape[1]\n", f"    C = x.shape[1]\n    _ = {edit}\n", 1)
        assert body != BN
        got = charged(A4, {"batchnorm2d_code": body})
        assert set(got) == {"batchnorm2d"}, got


BN_BACKWARD = solution_sources(source_nb(A4))["batchnorm2d_backward_code"]
_AUTOGRAD = ("    xg = x.detach().requires_grad_()\n"
             "    out, _, _ = batchnorm2d_forward(xg, weight, weight, weight, weight, True, eps=eps)\n"
             "    (dx,) = torch.autograd.grad(out, (xg,), dout)\n")


@pytest.mark.parametrize("edit, line", [
    (_AUTOGRAD, "uses .requires_grad_"),
    ("    x.requires_grad = True\n    (x * dout).sum().backward()\n", "uses .requires_grad"),
    ("    from torch.func import vjp\n", "imports vjp from torch.func"),
])
def test_batchnorm2d_backward_may_not_use_autograd(edit, line):
    anchor = "    C = x.shape[1]\n"
    assert BN_BACKWARD.count(anchor) == 1
    got = charged(A4, {"batchnorm2d_backward_code": BN_BACKWARD.replace(anchor, anchor + edit, 1)})
    assert set(got) == {"batchnorm2d_backward"} and line in got["batchnorm2d_backward"], got


def test_augment_may_not_call_the_graders_perturbation():
    aug = solution_sources(source_nb(A4))["augment_code"]
    body = aug.replace("    return out.clamp(0, 1)\n",
                       "    return torch.as_tensor(datasets.perturb_digits(x.numpy(), 0), dtype=x.dtype)\n", 1)
    assert body != aug
    got = charged(A4, {"augment_code": body})
    assert set(got) == {"augment"} and "uses .perturb_digits" in got["augment"], got


def test_the_explanation_names_the_rule_the_line_and_what_to_do():
    text = restrictions.explain("pad2d", "pad2d_code: line 9: uses .pad", A1)
    assert text.startswith("pad2d: this exercise must be written without numpy.pad — pad2d_code: line 9")
    assert "Build the padded array yourself" in text and "scores 0" in text
