"""What the notebooks' test cells call: comparisons whose failures a student can act on.

Every failure raises :class:`CheckFailure` (an ``AssertionError``) whose message says which exercise
failed, what was expected, what came back, where (shape, dtype, worst element and its index) and,
where the test knows it, what to look at next. Nothing here prints instead of asserting.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .protocol import Handle
from .tolerances import tolerance

__all__ = [
    "CheckFailure",
    "assert_close",
    "assert_equal",
    "assert_raises",
    "assert_shape",
    "assert_tuple",
    "call",
    "call_twice",
    "case",
    "check_gradient",
    "describe",
    "numeric_gradient",
    "rel_error",
]


class CheckFailure(AssertionError):
    """A check failed. The message is written for the student who has to fix it; ``kind`` says what
    sort of failure it is (``values``, ``shape``, ``dtype``, ``type``, ``raised``, ``side effect``,
    ``not implemented``, or ``check`` when a check did not say) — all a hidden case may tell."""

    def __init__(self, message: str = "", kind: str = "check"):
        super().__init__(message)
        self.kind = kind

    def _render_traceback_(self) -> list[str]:
        """What IPython shows for this failure in a notebook: the message alone (what was expected,
        what came, the hint, the student's line when their code raised), never the grader's frames
        or paths. Plain text, control characters (terminal colours) replaced: JupyterLab, nbgrader's
        Validator and a terminal show it as it is."""
        text = _CONTROL.sub("?", str(self).expandtabs(4)).strip("\n")
        return text.splitlines() or ["the check failed"]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


class Tally:
    """The cases of a hidden part as the judge counts them: how many ran, and the failures of those
    that failed (the judge reports their number and kinds, and logs their messages)."""

    def __init__(self) -> None:
        self.total = 0
        self.failures: list[Exception] = []
        self.depth = 0
        self.stopped_in_case = False  # a timeout or a lost kernel ended the check inside a case


_TALLY: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("autograder_tally", default=None)


@contextlib.contextmanager
def counting() -> Iterator[Tally]:
    """While the block runs, every :func:`case` is counted in the returned :class:`Tally` and a failed
    case does not stop the check. The judge runs a test cell's hidden part so; nothing else does."""
    tally = Tally()
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


@contextlib.contextmanager
def case() -> Iterator[None]:
    """One case of a check (``for cfg in cases: with case(): ...``).

    In a notebook and in a test cell's visible part this does nothing: the first failure ends the
    check and its whole message is the student's to read. In the hidden part the judge counts
    (:func:`counting`): a failed case is recorded and the check goes on with the next one, so the
    verdict can say "3 of 40 hidden cases failed" and of which kinds — never which inputs. A case
    inside another case is part of it. A lost kernel or a timeout is not a case's failure: it stops
    the check (neither is an ``Exception``)."""
    tally = _TALLY.get()
    if tally is None or tally.depth:
        yield
        return
    tally.total += 1
    tally.depth += 1
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - a failed case, counted; the judge reports its kind
        link: BaseException | None = exc
        for _ in range(20):  # keep the failure, not the frames (and the arrays) it was raised in
            if link is None:
                break
            link.__traceback__ = None
            link = link.__cause__ or link.__context__
        tally.failures.append(exc)
    except BaseException:
        tally.stopped_in_case = True
        raise
    finally:
        tally.depth -= 1


def describe(value: Any) -> str:
    """A short description of an argument or result: arrays by shape and dtype, the rest by repr."""
    if isinstance(value, np.ndarray):
        return f"array{tuple(value.shape)} {value.dtype}"
    if value is None:
        return "None"
    if isinstance(value, Handle):
        return f"a {value.type} object" if not value.why else value.why.split(";")[0]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.8g}"
    return repr(x.item() if isinstance(x, np.generic) else x)


def _failure(name: str, lines: Sequence[str], hint: str | None, kind: str = "values") -> CheckFailure:
    text = f"{name}: " + "\n  ".join(lines)
    if hint:
        text += f"\n  Hint: {hint}"
    return CheckFailure(text, kind)


def not_implemented(label: str) -> CheckFailure:
    """The failure for a function that still raises the released stub's NotImplementedError."""
    return CheckFailure(f"{label} is not implemented yet (it raises NotImplementedError).\n"
                        "  Hint: replace the `raise NotImplementedError()` line with your code.", "not implemented")


def call(fn: Callable, *args: Any, name: str | None = None, context: dict | None = None, **kwargs: Any) -> Any:
    """Call a student's function, turning a crash into a message that names the call.

    The call goes through :mod:`autograder.student`: in the notebook to the function itself, when
    grading to the student's kernel; either way the result is what crossed the protocol (plain
    data). ``NotImplementedError`` (the released stub) becomes "not implemented yet"; any other
    exception is reported with the arguments it was called with and the line it came from.
    ``context`` is passed on (``errstate``: NumPy's floating-point errors during the call).
    """
    from . import student

    label = name or getattr(fn, "__name__", "function")

    def shown() -> str:
        if name:  # the check's label already describes the call
            return label
        return label + "(" + ", ".join([describe(a) for a in args]
                                       + [f"{k}={describe(v)}" for k, v in kwargs.items()]) + ")"

    return _guarded(lambda: student.call(fn, *args, context=context, **kwargs), label, shown)


def call_as(label: str, fn: Callable, *args: Any, hint: str | None = None, context: dict | None = None,
            timeout: float | None = None, cpu: Any = None, **kwargs: Any) -> Any:
    """Like :func:`call`, for checks whose ``label`` already describes the call (its arguments
    summarised: shapes, modes); a crash message adds ``hint`` when given. ``timeout``: seconds the
    call may take in a grading kernel (beyond it, :class:`autograder.student.TimedOut`); ``cpu``: a
    :class:`autograder.student.CpuLimit` instead."""
    from . import student

    return _guarded(lambda: student.call(fn, *args, context=context, timeout=timeout, cpu=cpu, **kwargs), label,
                    lambda: label, hint)


def guarded(label: str, thunk: Callable[[], Any], hint: str | None = None) -> Any:
    """Run ``thunk`` (which reaches the student's code) with :func:`call`'s error messages."""
    return _guarded(thunk, label, lambda: label, hint)


def _guarded(thunk: Callable[[], Any], label: str, crash_label: Callable[[], str], hint: str | None = None) -> Any:
    from .student import NotData, StudentError

    try:
        return thunk()
    except NotImplementedError as exc:
        raise not_implemented(label) from exc
    except CheckFailure:
        raise
    except NotData as exc:
        raise CheckFailure(f"{crash_label()} returned {exc}.", "type") from None
    except Exception as exc:  # the student's bug, reported with the call that triggered it
        from .student import where

        extra = f"\n  Hint: {hint}" if hint else ""
        if isinstance(exc, StudentError):
            raise CheckFailure(f"{crash_label()} raised {exc.type_name}: {exc}{where(exc)}. "
                               f"Fix the error first.{extra}", raised_kind(exc)) from None
        raise CheckFailure(f"{crash_label()} raised {type(exc).__name__}: {exc}{where(exc)}. "
                           f"Fix the error first.{extra}", raised_kind(exc)) from exc


def raised_kind(exc: BaseException) -> str:
    """A crash as a hidden case may report it: the exception's type, if it is one of Python's own
    (a class the student named could carry data in its name)."""
    from .student import BUILTIN_ERRORS

    name = getattr(exc, "type_name", type(exc).__name__)
    return f"raised {name}" if name in BUILTIN_ERRORS else "raised an exception of its own class"


def assert_raises(fn: Callable, args: tuple, kwargs: dict, exc: type[BaseException], *, name: str,
                  why: str) -> None:
    """Raise a CheckFailure unless ``fn(*args, **kwargs)`` raises ``exc`` (``why`` says when it should)."""
    from . import student

    try:
        result = student.call(fn, *args, **kwargs)
    except exc:
        return
    except NotImplementedError as err:
        raise not_implemented(name) from err
    except Exception as err:
        kind = getattr(err, "type_name", type(err).__name__)
        raise CheckFailure(f"{name} should raise {exc.__name__} ({why}) but raised "
                           f"{kind}: {err}", raised_kind(err)) from err
    raise CheckFailure(f"{name} should raise {exc.__name__} ({why}) but returned {describe(result)}",
                       f"no {exc.__name__} raised")


def assert_tuple(result: Any, size: int, *, name: str, what: str, hint: str) -> tuple:
    """Return ``result`` if it is a tuple of ``size`` items (e.g. a forward's ``(out, cache)``), else fail."""
    if not isinstance(result, tuple) or len(result) != size:
        got = f"a tuple of {len(result)} items" if isinstance(result, tuple) else describe(result)
        raise _failure(name, [f"expected the tuple {what}, got {got}."], hint, "type")
    return result


def call_twice(fn: Callable, *args: Any, name: str, what: str = "its input", context: dict | None = None,
               hint: str | None = None, **kwargs: Any) -> tuple[Any, Callable[[], None]]:
    """Call a student's function twice on the *same* argument objects (its own copies, where it runs)
    and give back ``(first result, again)``: ``again()`` fails unless the second answer is the same.

    A function that changes an input in place (``x += ...`` on its argument, a padding written into
    the caller's array, an element nudged and not put back) answers the second call differently:
    the consequence a caller would meet, observed from what comes back — never from the kernel's
    word about its own state. Check the first result before calling ``again()``, so that a wrong
    answer is reported as wrong rather than as a side effect. ``what`` names the inputs in the message;
    ``hint`` is added to a crash's.
    """
    from . import student

    label = name
    first, second = _guarded(lambda: student.call(fn, *args, context=context, twice=True, **kwargs), label,
                             lambda: label, hint)

    def again() -> None:
        if second is student.NOT_CALLED:  # an answer that large is wrong for the judge's small inputs anyway
            return
        hint = ("\n  Hint: compute new arrays instead of writing into your arguments (the caller, and other "
                "layers' caches, still need them); if you change an element temporarily, put it back exactly.")
        if isinstance(second, BaseException):
            kind = getattr(second, "type_name", type(second).__name__)
            raise CheckFailure(f"{name}: called a second time on the same input objects, it raised {kind}: "
                               f"{second}, so the first call changed {what} in place.{hint}", "side effect")
        if not _same_data(first, second):
            raise CheckFailure(f"{name}: called a second time on the same input objects, it returned a different "
                               f"result, so the first call changed {what} in place.{hint}", "side effect")

    return first, again


def _same_data(a: Any, b: Any) -> bool:
    """Whether two results that crossed the protocol are the same data (NaN equal to NaN; objects
    that stayed in the kernel compare equal, since only their handles are here)."""
    if isinstance(a, Handle) or isinstance(b, Handle):
        return isinstance(a, Handle) and isinstance(b, Handle)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_data(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same_data(a[k], b[k]) for k in a)
    if hasattr(a, "detach") and hasattr(b, "detach"):
        a, b = a.detach().cpu().numpy(), b.detach().cpu().numpy()
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return (a.shape == b.shape and a.dtype == b.dtype
                and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")))
    try:
        return bool(a == b) or (a != a and b != b)
    except Exception:  # noqa: BLE001 - values that cannot be compared are not the same
        return False


def _as_array(value: Any, name: str, what: str) -> np.ndarray:
    if isinstance(value, Handle):
        got = value.why or f"a {value.type} object, which is not an array"
        raise CheckFailure(f"{name}: expected {what}, got {got}.", "type")
    if value is None:
        raise CheckFailure(
            f"{name}: expected {what}, got None. Did the function forget to `return` its result?", "type"
        )
    if isinstance(value, tuple) and what.startswith("an array"):
        raise CheckFailure(f"{name}: expected {what}, got a tuple of {len(value)} items.", "type")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # e.g. ragged lists
        raise CheckFailure(f"{name}: expected {what}, got {type(value).__name__} ({exc}).", "type") from exc
    if arr.dtype == object:
        raise CheckFailure(f"{name}: expected {what}, got an object array from {type(value).__name__}.", "type")
    return arr


def assert_shape(got: Any, shape: Sequence[int], *, name: str, hint: str | None = None) -> np.ndarray:
    """Raise unless ``got`` is an array of exactly ``shape``; return it as an array."""
    arr = _as_array(got, name, f"an array of shape {tuple(shape)}")
    if tuple(arr.shape) != tuple(shape):
        raise _failure(
            name, [f"wrong shape: expected {tuple(shape)}, got {tuple(arr.shape)}."], hint, "shape")
    return arr


def assert_close(
    got: Any,
    expected: Any,
    *,
    name: str,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool | str = False,
    hint: str | None = None,
) -> None:
    """Raise :class:`CheckFailure` unless ``got`` matches ``expected`` elementwise.

    The test is ``|got - expected| <= atol + rtol * |expected|`` at every element, NaN matching NaN
    only where expected is NaN. ``check_dtype=True`` demands the same dtype; a string such as
    ``"float"`` or ``"integer"`` demands that dtype kind. Default tolerances come from
    :data:`autograder.tolerances.TOLERANCES` for the expected dtype on the CPU.
    """
    exp = np.asarray(expected)
    arr = _as_array(got, name, f"an array of shape {tuple(exp.shape)}")
    if rtol is None or atol is None:
        dtype = exp.dtype if exp.dtype.kind == "f" else np.dtype(np.float64)
        d_rtol, d_atol = tolerance(dtype)
        rtol = d_rtol if rtol is None else rtol
        atol = d_atol if atol is None else atol

    if arr.shape != exp.shape:
        extra = ""
        if arr.size == exp.size and arr.size > 1:
            extra = " The number of elements matches: a reshape where a transpose was needed, or axes in the wrong order?"
        elif arr.ndim == exp.ndim and arr.ndim > 0:
            diffs = [i for i in range(arr.ndim) if arr.shape[i] != exp.shape[i]]
            extra = f" Axis {diffs[0]} differs by {arr.shape[diffs[0]] - exp.shape[diffs[0]]:+d}."
        raise _failure(name, [
            f"wrong shape: expected {tuple(exp.shape)}, got {tuple(arr.shape)}.{extra}"], hint, "shape")

    if check_dtype:
        if check_dtype is True and arr.dtype != exp.dtype:
            raise _failure(name, [f"wrong dtype: expected {exp.dtype}, got {arr.dtype}."], hint, "dtype")
        if isinstance(check_dtype, str) and not np.issubdtype(arr.dtype, getattr(np, check_dtype)):
            raise _failure(
                name, [f"wrong dtype: expected a {check_dtype} dtype, got {arr.dtype}."], hint, "dtype")

    if arr.dtype.kind not in "biuf" or exp.dtype.kind not in "biuf":
        if arr.dtype.kind not in "biuf":
            raise _failure(name, [f"expected numbers, got an array of dtype {arr.dtype}."], hint, "dtype")

    a = arr.astype(np.float64)
    e = exp.astype(np.float64)
    if a.size == 0:
        return
    nan_expected = np.isnan(e)
    bad_nan = np.isnan(a) & ~nan_expected
    diff = np.where(nan_expected, np.where(np.isnan(a), 0.0, np.inf), np.abs(a - e))
    diff = np.where(bad_nan, np.inf, diff)
    allowed = atol + rtol * np.abs(np.where(nan_expected, 0.0, e))
    wrong = ~(diff <= allowed)
    if not wrong.any():
        return

    excess = np.where(wrong, diff - allowed, -np.inf)
    flat = int(np.argmax(excess))
    idx = np.unravel_index(flat, a.shape) if a.ndim else ()
    where = f"at index {tuple(int(i) for i in idx)}" if a.ndim else "(scalar)"
    n_wrong = int(wrong.sum())
    lines = [
        f"values differ from the reference in {n_wrong} of {a.size} element(s).",
        f"worst element {where}: expected {_fmt(e[idx])}, got {_fmt(a[idx])} "
        f"(|difference| {_fmt(diff[idx])}, allowed {atol:.1e} + {rtol:.1e}*|expected|).",
    ]
    if np.isfinite(a).all() and np.isfinite(e).all() and a.size > 1:
        lines.append(f"relative error over the whole array: {rel_error(a, e):.3e}.")
    if bad_nan.any():
        lines.append(f"{int(bad_nan.sum())} element(s) are NaN where a number was expected.")
    raise _failure(name, lines, hint)


def assert_equal(got: Any, expected: Any, *, name: str, hint: str | None = None) -> None:
    """Exact equality for integers, tuples, strings and integer arrays, with a clear message."""
    if isinstance(expected, np.ndarray):
        arr = _as_array(got, name, f"an array of shape {expected.shape}")
        if arr.shape != expected.shape:
            raise _failure(name, [f"wrong shape: expected {expected.shape}, got {arr.shape}."], hint, "shape")
        if not np.array_equal(arr, expected):
            mismatch = np.argwhere(arr != expected)[0]
            idx = tuple(int(i) for i in mismatch)
            raise _failure(name, [
                f"{int((arr != expected).sum())} element(s) differ; first at index {idx}: "
                f"expected {_fmt(expected[idx])}, got {_fmt(arr[idx])}."], hint)
        return
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise _failure(name, [
                f"expected the integer {int(expected)}, got {describe(got)} "
                f"of type {type(got).__name__}."], hint)
    if got != expected:
        raise _failure(name, [f"expected {expected!r}, got {got!r}."], hint)


def rel_error(x: Any, y: Any) -> float:
    """The largest elementwise ``|x - y| / (|x| + |y|)``, each denominator at least 1e-8.

    Lecture 04's rule for gradients in float64: 1e-7 or less is agreement, 1e-2 or more a wrong
    result; near 1 means unrelated values.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))) if x.size else 0.0


def numeric_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, dout: Any = None,
                     h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x`` (in float64).

    ``x`` is perturbed in place, one element at a time, and restored. ``dout`` defaults to ones,
    making this the gradient of ``sum(f(x))``; for a scalar ``f`` it is the plain gradient.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numeric_gradient needs a float64 array, got {x.dtype}: "
                        "central differences in float32 lose most of their digits")
    grad = np.zeros_like(x)
    weights = None if dout is None else np.asarray(dout, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.asarray(f(x), dtype=np.float64)
        x[i] = old - h
        minus = np.asarray(f(x), dtype=np.float64)
        x[i] = old
        delta = plus - minus if weights is None else (plus - minus) * weights
        grad[i] = np.sum(delta) / (2 * h)
        it.iternext()
    return grad


def check_gradient(f: Callable[[np.ndarray], Any], x: np.ndarray, analytic: Any, *, name: str,
                   argname: str = "x", dout: Any = None, rtol: float = 1e-5, atol: float = 1e-7,
                   h: float = 1e-6) -> float:
    """Compare an analytic gradient with float64 central differences; return the relative error.

    On failure the message names the function, the argument, the worst element's index and both
    values there.
    """
    x64 = np.array(x, dtype=np.float64)
    numeric = numeric_gradient(f, x64, dout=dout, h=h)
    analytic_arr = _as_array(analytic, f"{name}: gradient with respect to {argname}",
                             f"an array of shape {numeric.shape}")
    assert_close(analytic_arr, numeric, name=f"{name}: d/d{argname}", rtol=rtol, atol=atol,
                 hint=f"the analytic gradient of {argname} disagrees with central differences.")
    return rel_error(analytic_arr, numeric)

