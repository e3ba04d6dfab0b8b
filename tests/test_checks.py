"""autograder.checks: do failures say what was expected, what came and where — and do passes pass?"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograder.kernel.checks import (CheckFailure, assert_close, assert_equal, assert_shape, assert_tuple,
                               call, call_twice, check_gradient, numeric_gradient, rel_error)
from autograder.kernel.tolerances import TOLERANCES, tolerance

shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=6)
finite = st.floats(-1e3, 1e3, allow_nan=False, width=64)


def fails(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailure) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_check_failure_is_an_assertion_error():
    assert issubclass(CheckFailure, AssertionError)


@given(hnp.arrays(np.float64, shapes, elements=finite))
@settings(deadline=None, max_examples=60)
def test_identical_arrays_pass(x):
    assert_close(x.copy(), x, name="f")


def test_shape_mismatch_names_both_shapes_and_the_axis():
    msg = fails(assert_close, np.zeros((3, 4)), np.zeros((3, 5)), name="correlate2d(x)")
    assert msg.startswith("correlate2d(x): ")
    assert "expected (3, 5), got (3, 4)" in msg and "Axis 1 differs by -1" in msg


def test_same_size_different_shape_suggests_transpose():
    msg = fails(assert_close, np.zeros((4, 3)), np.zeros((3, 4)), name="f")
    assert "reshape where a transpose was needed" in msg


def test_worst_element_and_its_index():
    expected = np.zeros((3, 4))
    got = expected.copy()
    got[1, 2] = 5.0
    got[2, 3] = 0.5
    msg = fails(assert_close, got, expected, name="f", hint="look at the stride")
    assert "2 of 12 element(s)" in msg
    assert "worst element at index (1, 2): expected 0, got 5" in msg
    assert msg.rstrip().endswith("Hint: look at the stride")


def test_nan_where_a_number_was_expected():
    msg = fails(assert_close, np.array([1.0, np.nan]), np.array([1.0, 2.0]), name="f")
    assert "NaN where a number was expected" in msg and "index (1,)" in msg


def test_nan_matches_nan():
    assert_close(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]), name="f")


def test_none_says_forgot_return():
    assert "forget to `return`" in fails(assert_close, None, np.zeros(2), name="f")


def test_tuple_instead_of_array():
    assert "tuple of 2 items" in fails(assert_close, (np.zeros(2), None), np.zeros(2), name="f")


def test_dtype_checks():
    assert "expected uint8, got int64" in fails(
        assert_close, np.zeros(3, np.int64), np.zeros(3, np.uint8), name="f", check_dtype=True)
    assert "floating dtype" in fails(assert_close, np.zeros(3, np.int64), np.zeros(3), name="f",
                                     check_dtype="floating")
    assert_close(np.zeros(3, np.float32), np.zeros(3), name="f", check_dtype="floating")


def test_default_tolerance_follows_the_expected_dtype():
    rtol32, atol32 = TOLERANCES[("cpu", "float32")]
    assert_close(np.float32(1.0 + rtol32 / 2), np.float32(1.0), name="f")
    with pytest.raises(CheckFailure):
        assert_close(1.0 + 1e-5, 1.0, name="f")  # float64 expected: 1e-5 is far too much


def test_tolerance_table_lookup():
    assert tolerance(np.float64) == TOLERANCES[("cpu", "float64")]
    assert tolerance(torch.float32, "cuda") == TOLERANCES[("cuda", "float32")]
    with pytest.raises(KeyError, match="no tolerance for int8"):
        tolerance(np.int8)


def test_assert_equal_for_integers_and_arrays():
    assert_equal(np.int64(3), 3, name="f")
    assert "expected the integer 3, got 3.0 of type float" in fails(assert_equal, 3.0, 3, name="f")
    assert "of type bool" in fails(assert_equal, True, 1, name="f")
    msg = fails(assert_equal, np.array([1, 2, 3]), np.array([1, 5, 3]), name="f")
    assert "first at index (1,): expected 5, got 2" in msg


def test_assert_shape():
    assert assert_shape([[1, 2]], (1, 2), name="f").shape == (1, 2)
    assert "expected (2, 1), got (1, 2)" in fails(assert_shape, [[1, 2]], (2, 1), name="f")


def test_assert_tuple():
    assert assert_tuple((1, 2), 2, name="f", what="(out, cache)", hint="h") == (1, 2)
    msg = fails(assert_tuple, np.zeros(3), 2, name="relu_forward(x)", what="(out, cache)",
                hint="a forward function ends with `return out, cache`.")
    assert msg.startswith("relu_forward(x): expected the tuple (out, cache), got array(3,) float64.")
    assert "got a tuple of 3 items" in fails(assert_tuple, (1, 2, 3), 2, name="f", what="(a, b)", hint="h")


def test_call_twice_sees_an_input_changed_in_place_by_its_consequence():
    """Is a function that writes into its argument caught by a second call on the same object, while
    the check's own array stays the judge's (never changed by the call)?"""
    def honest(x):
        return x * 2

    def scales_in_place(x):
        x *= 2
        return x

    x = np.arange(3.0)
    got, again = call_twice(honest, x, name="double(x)")
    again()
    np.testing.assert_array_equal(got, [0.0, 2.0, 4.0])
    got, again = call_twice(scales_in_place, x, name="double(x)", what="x")
    np.testing.assert_array_equal(got, [0.0, 2.0, 4.0])  # the first call saw the judge's values
    np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])  # and the judge's array is untouched
    with pytest.raises(CheckFailure) as info:
        again()
    assert "changed x in place" in str(info.value) and info.value.kind == "side effect"


def test_a_call_never_changes_the_checks_arguments():
    """Does the notebook's own test cell hand the student's function copies, as grading does?"""
    def zeroes(dout):
        dout[...] = 0
        return dout

    dout = np.ones(4)
    assert not call(zeroes, dout).any()
    np.testing.assert_array_equal(dout, np.ones(4))


def test_call_reports_not_implemented_and_crashes():
    def stub(x):
        raise NotImplementedError()

    def buggy(x, stride=1):
        return x[10]

    assert "stub is not implemented yet" in fails(call, stub, np.zeros(3))
    msg = fails(call, buggy, np.zeros((2, 3)), stride=2, name="conv(x (2, 3), stride=2)")
    assert msg.startswith("conv(x (2, 3), stride=2) raised IndexError")  # the label describes the call
    msg = fails(call, buggy, np.zeros((2, 3)), stride=2)
    assert msg.startswith("buggy(array(2, 3) float64, stride=2) raised IndexError")  # or the arguments do
    with pytest.raises(CheckFailure) as info:
        call(buggy, np.zeros(3))
    assert isinstance(info.value.__cause__, IndexError)  # the student's traceback is kept


@given(hnp.arrays(np.float64, shapes, elements=finite), hnp.arrays(np.float64, shapes, elements=finite))
@settings(deadline=None, max_examples=60)
def test_rel_error_properties(x, y):
    """rel_error is symmetric, zero on equal inputs, and bounded by 1 (for finite inputs)."""
    if x.shape != y.shape:
        y = np.resize(y, x.shape)
    assert rel_error(x, x) == 0.0
    assert rel_error(x, y) == pytest.approx(rel_error(y, x))
    assert 0.0 <= rel_error(x, y) <= 1.0


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements=st.floats(-3, 3, width=64)))
@settings(deadline=None, max_examples=40)
def test_numeric_gradient_matches_torch_autograd(x):
    """Central differences in float64 agree with PyTorch autograd on a smooth function."""
    def f(a):
        return np.sum(np.sin(a) * a**2)

    t = torch.tensor(x, requires_grad=True)
    (torch.sin(t) * t**2).sum().backward()
    assert_close(numeric_gradient(f, x.copy()), t.grad.numpy(), name="grad", rtol=1e-6, atol=1e-7)


def test_numeric_gradient_with_upstream_gradient():
    x = np.random.default_rng(0).standard_normal((3, 4))
    dout = np.random.default_rng(1).standard_normal((3, 4))
    assert_close(numeric_gradient(np.tanh, x.copy(), dout), dout * (1 - np.tanh(x) ** 2), name="tanh",
                 rtol=1e-6, atol=1e-8)


def test_numeric_gradient_refuses_float32():
    with pytest.raises(TypeError, match="float64"):
        numeric_gradient(np.sum, np.zeros(3, np.float32))


def test_check_gradient_names_argument_and_index():
    x = np.random.default_rng(0).standard_normal((2, 3))
    good = 2 * x
    assert check_gradient(lambda a: np.sum(a**2), x, good, name="square") < 1e-8
    bad = good.copy()
    bad[1, 0] += 1.0
    msg = fails(check_gradient, lambda a: np.sum(a**2), x, bad, name="square_backward", argname="x")
    assert msg.startswith("square_backward: d/dx") and "index (1, 0)" in msg


# ---------------------------------------------------------------------------------------------
# Cases: a hidden part counts them, and says how many failed and of which kinds only
# ---------------------------------------------------------------------------------------------

def _sweep(answers):
    """A check over five cases, failing where the answer is wrong (a kind per way it is wrong)."""
    from autograder.kernel.checks import case

    for i, answer in enumerate(answers):
        with case():
            if answer == "shape":
                assert_shape(np.zeros((2, 3)), (3, 2), name=f"f(case {i})")
            elif answer == "values":
                assert_close(np.ones(3), np.zeros(3), name=f"f(case {i})")
            elif answer == "raises":
                raise IndexError(f"secret input {i}")
            elif answer == "stop":
                raise KeyboardInterrupt  # what a timeout or a lost kernel is to a check: not an Exception


def test_outside_a_count_the_first_failure_ends_the_check():
    msg = fails(_sweep, ["ok", "values", "shape"])
    assert msg.startswith("f(case 1)")


def test_a_count_goes_on_past_failed_cases_and_keeps_their_kinds():
    from autograder.kernel import checks
    from autograder.grading.judge import hidden_failure

    with checks.counting() as tally:
        _sweep(["ok", "values", "shape", "values", "raises"])
    assert tally.total == 5 and [type(e).__name__ for e in tally.failures] == \
        ["CheckFailure", "CheckFailure", "CheckFailure", "IndexError"]
    assert all(e.__traceback__ is None for e in tally.failures)  # the failures, not their frames
    said = hidden_failure(tally=tally)
    assert said.startswith("hidden cases: 4 of 5 cases failed — values differ from the reference (2); "), said
    assert "wrong shape (1)" in said and "secret" not in said and "case 1" not in said


def test_a_stop_inside_a_case_says_where_it_stopped_and_what_failed_before():
    from autograder.kernel import checks
    from autograder.grading.judge import hidden_failure
    from autograder.kernel.student import TimedOut

    with checks.counting() as tally, pytest.raises(KeyboardInterrupt):
        _sweep(["ok", "values", "ok", "stop", "ok"])
    assert tally.total == 4 and tally.stopped_in_case
    said = hidden_failure(TimedOut("timed out: 8 s"), tally)
    assert said.startswith("hidden cases: case 4 stopped the test — it ran past the exercise's time limit; "
                           "before it, 1 of 3 cases failed — values differ from the reference."), said


def test_a_failure_outside_every_case_is_one_more_case():
    from autograder.kernel import checks
    from autograder.grading.judge import hidden_failure

    with checks.counting() as tally:
        _sweep(["ok", "ok"])
    said = hidden_failure(CheckFailure("f(secret): no", "no ValueError raised"), tally)
    assert said.startswith("hidden cases: 1 of 3 cases failed — no ValueError was raised where one should be"), said


def test_a_case_inside_a_case_is_part_of_it():
    from autograder.kernel import checks

    with checks.counting() as tally:
        for _ in range(3):
            with checks.case():
                _sweep(["values", "ok"])
    assert tally.total == 3 and len(tally.failures) == 3


# ---------------------------------------------------------------------------------------------
# In the student's notebook: the message, never the grader's frames
# ---------------------------------------------------------------------------------------------

STUDENT_CELL = '''import numpy as np

def hwc_to_chw(img):
    return np.transpose(img, (2, 1, 0))

def chw_to_hwc(img):
    raise NotImplementedError()
'''


@pytest.mark.slow
def test_a_failing_test_cell_shows_the_message_and_the_students_line_only():
    """A real kernel (nbclient) runs a small notebook whose test cells fail: a wrong shape, a crash
    in the student's code, the released stub, a message of the student's with a terminal colour. Each
    error output is the check's message and hint (and the student's line when their code raised),
    with no "Traceback", no frame or path of the grader, no escape sequence; nbgrader's Validator
    reads the same message; the exception is still an AssertionError."""
    import nbformat
    from nbclient import NotebookClient
    from nbgrader.validator import Validator

    test = "from autograder.suites import a1_images_and_convolution as suite\nsuite.check_layout(hwc_to_chw, chw_to_hwc)"
    cells = [STUDENT_CELL, test,
             "def hwc_to_chw(img):\n    x = img.shape[5]\n    return x\n" + test.splitlines()[1],
             "def hwc_to_chw(img):\n    return np.transpose(img, (2, 0, 1))\n" + test.splitlines()[1],
             "def hwc_to_chw(img):\n    raise ValueError('\\x1b[31mred\\x1b[0m text')\n" + test.splitlines()[1],
             "try:\n    suite.check_layout(hwc_to_chw, chw_to_hwc)\nexcept AssertionError as e:\n"
             "    print('an AssertionError:', type(e).__name__)",
             "from autograder.kernel import student\ndef spin(n):\n    while True:\n        n += 1\n"
             "student.call(spin, 0, cpu=student.CpuLimit(0.5))"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    errors = []
    for cell in nb.cells[1:5]:
        [error] = [o for o in cell.outputs if o.output_type == "error"]
        errors.append(("\n".join(error.traceback), error))
    for text, error in errors:
        assert "Traceback" not in text and "autograder/" not in text and "File " not in text, text
        assert "\x1b" not in text and "checks.py" not in text and "suite." not in text, text
        assert error.ename == "CheckFailure" and text == error.evalue.replace("\x1b", "?"), text
    shape, crash, stub, colour = (t for t, _ in errors)
    assert shape == ("hwc_to_chw(image of shape (4, 5, 3)): wrong shape: expected (3, 4, 5), got (3, 5, 4). The "
                     "number of elements matches: a reshape where a transpose was needed, or axes in the wrong order?\n"
                     "  Hint: move the channel axis with a transpose (np.transpose / np.moveaxis); a reshape keeps "
                     "the memory order and scrambles the pixels.")
    assert crash.startswith("hwc_to_chw(image of shape (4, 5, 3)) raised IndexError: tuple index out of range "
                            "(in hwc_to_chw, line 2 of its cell: x = img.shape[5]). Fix the error first."), crash
    assert stub == ("chw_to_hwc(image of shape (3, 4, 5)) is not implemented yet (it raises NotImplementedError).\n"
                    "  Hint: replace the `raise NotImplementedError()` line with your code.")
    assert "raised ValueError: ?[31mred?[0m text (in hwc_to_chw, line 2 of its cell:" in colour, colour
    assert nb.cells[5].outputs[0].text.strip() == "an AssertionError: CheckFailure"
    [stopped] = [o for o in nb.cells[6].outputs if o.output_type == "error"]  # past a CPU limit
    text = "\n".join(stopped.traceback)
    assert stopped.ename == "TimedOut" and "Traceback" not in text and "autograder/" not in text, text
    assert re.fullmatch(r"TimedOut: stopped: it used more than its 0.5 s CPU limit \(in spin, line [34] of its "
                        r"cell: (while True:|n \+= 1)\)", text), text
    validator = Validator()
    for (text, _), cell in zip(errors, nb.cells[1:5]):
        assert validator._extract_error(cell) == text  # what nbgrader's own Validate shows
