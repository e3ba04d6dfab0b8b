"""Checks for assignment a5_resnet: residual blocks (given torchvision's ``downsample``, built where
the student's code runs), ResNet-18/34/50, a small CIFAR-style ResNet trained on real digits, a
squeeze-and-excitation block, and DenseNet's layer, block, transition and DenseNet-121, all in PyTorch.

Every module is checked against the reference of the same name in :mod:`autograder.models`
(torchvision's structure and names, without torchvision):

* structurally — the ``state_dict`` keys and shapes must be the reference's, and so must the number
  of trainable parameters (the big ResNets are built on the ``meta`` device: no memory, no time);
* numerically — the student's module loads the reference's weights (:func:`models.reference_weights`:
  random, with non-trivial BatchNorm statistics) and must give the reference's outputs, in eval and
  in train mode, in float64 on the reference device (:func:`models.run`: the GPU when present).
  When the outputs differ, the message names the first submodule whose output differs (found with
  forward hooks), or says that every submodule agrees and the difference is in ``forward`` itself.
  The passes of one comparison (eval then train, or eval twice) run in the kernel on the same ``x``:
  a module that changes its input in place gives a later pass an output the judge does not expect,
  where the same pass on a fresh ``x`` is right. No verdict rests on what the kernel says about its
  own objects beyond their state_dict names and shapes, which the outputs with the judge's weights
  then decide anyway (docs/ARCHITECTURE.md, "Facts the judge takes from the kernel").

The small ResNet is also checked by its gradients (every parameter's, against the reference's) and
trained: the grader's own loop (``TRAIN``) trains ``CifarResNet(**NET)`` on the embedded MNIST
training digits and requires ``THRESHOLD`` accuracy on held-out digits perturbed with the grader's
seed (:func:`datasets.perturb_digits`), which no one can have memorised.

Without ``seed`` a check runs its visible cases; with ``seed`` it runs ``n`` random configurations
drawn from that seed instead (the hidden tests; the test cell has just run the visible ones).
PyTorch runs on one CPU thread inside the checks: the tensors are small, and on a busy machine
several threads fight over the cores and run many times slower.
"""

from __future__ import annotations

import copy
import time
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import models
from ..kernel import specnet, student
from .. import reference as ref
from ..kernel.checks import CheckFailure, assert_close, case, describe, not_implemented
from ..secret import seeds_for
from ..kernel.seed import rng
from ..kernel.tolerances import tolerance
from . import dims, one_torch_thread, recipe

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

# Exercise 5: the grader's training run (the same for every submission).
NET = dict(blocks=1, widths=(8, 16, 32), num_classes=10, in_channels=1)
# Two epochs: with one, a correct model scored 0.76-0.92 over hidden seeds (per-submission seeds met the
# tail: a false failure); with two, 0.937-0.964 over 24 seeds, far from the bar.
TRAIN = dict(epochs=2, batch_size=32, lr=0.3, momentum=0.9)
THRESHOLD = 0.80  # accuracy required on the perturbed held-out digits
TIME_LIMIT = 60.0  # seconds of the kernel's CPU time the training may take (measured by the judge)
MAX_LISTED = 4  # state_dict keys named in one message


# ---------------------------------------------------------------------------------------------
# Helpers: building, comparing structure, running, explaining a difference
# ---------------------------------------------------------------------------------------------

one_thread = one_torch_thread


_dims = dims


def _arg(value: Any) -> str:
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, tuple):
        return str(tuple(int(v) for v in value))
    return repr(value)


def signature(name: str, *args: Any, **kwargs: Any) -> str:
    """How a call reads in a message: ``BasicBlock(8, 16, stride=2)``."""
    return f"{name}(" + ", ".join([_arg(a) for a in args] + [f"{k}={_arg(v)}" for k, v in kwargs.items()]) + ")"


def _raiser(exc: BaseException) -> str | None:
    """The qualified name of the function that raised ``exc`` (its innermost frame): from the
    kernel's report of the student's lines, or from the traceback in the notebook's own process."""
    frames = getattr(exc, "where", None)
    if frames:
        return frames[-1][0]
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return getattr(code, "co_qualname", code.co_name)


def _not_implemented(label: str, exc: NotImplementedError) -> CheckFailure:
    """"BasicBlock(8, 8, stride=1): BasicBlock.__init__ is not implemented yet" (the stub that raised)."""
    where = _raiser(exc)
    return not_implemented(f"{label}: {where}" if where and where != label.split("(")[0] else label)


def _crash(label: str, exc: Exception, extra: str = "") -> CheckFailure:
    kind = getattr(exc, "type_name", type(exc).__name__)
    return CheckFailure(f"{label} raised {kind}: {exc}{student.where(exc)}{extra}\n"
                        "  Hint: fix the error first.")


def _reaching(label: str, thunk: Callable[[], Any], extra: Callable[[], str] | None = None) -> Any:
    """``thunk()`` (which reaches the student's code), its errors as messages naming ``label``."""
    try:
        return thunk()
    except NotImplementedError as exc:
        raise _not_implemented(label, exc) from None
    except CheckFailure:
        raise
    except student.NotData as exc:
        raise CheckFailure(f"{label} returned {exc}.") from None
    except Exception as exc:  # the student's bug, reported with the call that triggered it
        raise _crash(label, exc, extra() if extra else "") from None


def build(factory: Callable, label: str, *args: Any, meta: bool = False, **kwargs: Any) -> tuple[Any, dict]:
    """``factory(*args, **kwargs)``, which must be an ``nn.Module``; on the meta device when ``meta``
    (parameters get shapes but no memory), falling back to the CPU if the code cannot run there.
    Returns the module (where the student's code lives) and what :func:`ops.module_info` says of it."""
    model = _reaching(label, lambda: student.new(factory, *args, meta=meta, **kwargs))
    info = _reaching(f"{label}.state_dict()", lambda: student.op("module_info", model))
    if not info.get("is_module"):
        raise CheckFailure(f"{label} returned {describe(model)}, expected an nn.Module.\n"
                           "  Hint: a class that subclasses nn.Module and calls super().__init__() first; "
                           "a builder function ends with `return ResNet(...)`.")
    return model, info


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(f"'{k}'" for k in keys[:MAX_LISTED])
    return shown + (f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else "")


def compare_structure(info: dict, reference: nn.Module, label: str, hint: str) -> None:
    """The trainable parameter count, the state_dict keys and every tensor's shape must be the reference's."""
    got = {k: tuple(v[0]) for k, v in info["state"].items()}
    n_got = info["trainable"]
    expected = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    n_expected = models.count_params(reference)
    lines = []
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing:
        lines.append(f"state_dict lacks {_listed(missing)}.")
    if unexpected:
        lines.append(f"state_dict has unexpected {_listed(unexpected)}.")
    wrong = [k for k in expected if k in got and got[k] != expected[k]]
    if wrong:
        k = wrong[0]
        more = f" ({len(wrong) - 1} more tensors have the wrong shape)" if len(wrong) > 1 else ""
        lines.append(f"state_dict['{k}'] has shape {_dims(got[k])}, expected {_dims(expected[k])}{more}.")
    if lines:  # the parameter count only explains a difference the state_dict shows (the kernel states it)
        if n_got != n_expected:
            lines.insert(0, f"has {n_got:,} trainable parameters, expected {n_expected:,} ({n_got - n_expected:+,}).")
        raise CheckFailure(f"{label}: " + "\n  ".join(lines) + f"\n  Hint: {hint}")


def load_reference(model: Any, weights: dict[str, torch.Tensor], label: str) -> Any:
    """The student's model in float64 with the reference's weights loaded (strictly)."""
    _reaching(f"{label}.load_state_dict(the reference's weights)",
              lambda: student.op("load", model, weights, dtype="float64"))
    return model


def trace(model: nn.Module, x: torch.Tensor, train: bool) -> tuple[dict[str, torch.Tensor], BaseException | None]:
    """The first output of every named submodule of a *reference* model for input ``x``, in call
    order (float64, on the reference device, on a copy), and the exception that stopped it, if any."""
    dev = ref.device()
    net = copy.deepcopy(model).to(device=dev, dtype=torch.float64)
    net.train(train)
    outputs: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Callable:
        def record(_module, _inputs, out) -> None:
            if name not in outputs and isinstance(out, torch.Tensor):
                outputs[name] = out.detach().clone().cpu()
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in net.named_modules() if name]
    error = None
    try:
        with torch.no_grad():
            net(x.to(device=dev, dtype=torch.float64))
    except Exception as exc:  # noqa: BLE001 - the caller already reports the crash itself
        error = exc
    finally:
        for h in handles:
            h.remove()
    return outputs, error


def first_difference(model: Any, reference: nn.Module, x: torch.Tensor, train: bool) -> str:
    """A sentence naming the first submodule (in the reference's call order) whose output differs."""
    try:
        answer = student.op("trace", model, x, train=train)
        got, error = answer["seen"], answer["error"]
        expected, _ = trace(reference, x, train)
    except Exception:  # noqa: BLE001 - a diagnosis must never hide the real failure
        return ""
    rtol, atol = tolerance(torch.float64, ref.device().type)
    kinds = dict(reference.named_modules())
    for name, exp in expected.items():
        kind = type(kinds[name]).__name__
        if name not in got:
            if error is None:
                return (f"Where: self.{name} ({kind}) is never called in forward; the reference's output "
                        f"there has shape {_dims(exp.shape)}.")
            continue
        out = got[name]
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(exp.shape):
            shape = _dims(out.shape) if isinstance(out, torch.Tensor) else describe(out)
            return (f"Where: the first submodule whose output differs is self.{name} ({kind}): shape "
                    f"{shape}, expected {_dims(exp.shape)}.")
        if not torch.allclose(out.to(torch.float64), exp, rtol=rtol, atol=atol):
            return f"Where: the first submodule whose output differs is self.{name} ({kind})."
    if error is None:
        return ("Where: every submodule's output matches the reference, so the difference is in forward() "
                "itself, in how it combines them.")
    return ""


def run_model(model: Any, x: torch.Tensor, modes: Sequence[bool], label: str,
              reference: nn.Module | None = None) -> list[torch.Tensor]:
    """The student's ``model(x)`` as :func:`models.run` computes the reference's (on a float64 copy,
    in eval mode or in train mode), once per mode of ``modes``, in order, all on the same ``x`` in the
    kernel; a crash is reported naming ``label`` and, when it can tell, the first submodule whose
    output went wrong."""
    where = (lambda: f"\n  {first_difference(model, reference, x, modes[0])}") if reference is not None else None
    answer = _reaching(label, lambda: student.op("forward", model, x, train=list(modes)), where)
    outs = answer if isinstance(answer, list) and len(answer) == len(modes) else [answer]
    for out in outs:
        if not isinstance(out, torch.Tensor):
            raise CheckFailure(f"{label} returned {describe(out)}, expected a tensor.\n"
                               "  Hint: forward ends with `return out`.")
    return [out.to(torch.float64) for out in outs]


def _same(got: torch.Tensor, expected: torch.Tensor) -> bool:
    rtol, atol = tolerance(torch.float64, ref.device().type)
    return tuple(got.shape) == tuple(expected.shape) and torch.allclose(got, expected, rtol=rtol, atol=atol)


def _explain(model: Any, reference: nn.Module, x: torch.Tensor, train: bool, got: torch.Tensor,
             expected: torch.Tensor, label: str, hint: str) -> None:
    """The failure for an output that differs from the reference's, naming the first submodule that differs."""
    rtol, atol = tolerance(torch.float64, ref.device().type)
    try:
        assert_close(got.numpy(), expected.numpy(), name=label, rtol=rtol, atol=atol, hint=hint)
    except CheckFailure as exc:
        where = first_difference(model, reference, x, train)
        text = str(exc)
        cut = text.rfind("\n  Hint: ")
        raise CheckFailure(text[:cut] + f"\n  {where}" + text[cut:] if where and cut >= 0 else text) from None
    raise CheckFailure(f"{label}: the output differs from the reference's.\n  Hint: {hint}")


def compare_outputs(model: Any, reference: nn.Module, x: torch.Tensor, modes: Sequence[bool], labels: Sequence[str],
                    hint: str, call_label: str | None = None) -> None:
    """Same input, same weights: in each mode of ``modes`` (in order, one pass each, all on the same ``x``
    in the kernel), the student's output must be the reference's. The passes after the first are the
    consequence check for an input changed in place: they see what the first pass left of ``x``."""
    expected = [models.run(reference, x, train=train) for train in modes]
    outs = run_model(model, x.clone(), modes, call_label or labels[0], reference)  # x stays the judge's
    for k, (train, got, exp, label) in enumerate(zip(modes, outs, expected, labels)):
        if _same(got, exp):
            continue
        if k > 0 and all(_same(g, e) for g, e in zip(outs[:k], expected[:k])):
            alone = run_model(model, x.clone(), [train], label, reference)[0]  # the same pass on a fresh x
            if _same(alone, exp):
                raise CheckFailure(f"{label}: right on a fresh x, wrong when it follows another pass on the same x: "
                                   "the block modified its input x in place.\n  Hint: x is needed twice (the "
                                   "shortcut uses it after the convolutions), and the caller may need it too; apply "
                                   "in-place operations such as ReLU(inplace=True) or += only to tensors the block "
                                   "created itself.")
        _explain(model, reference, x, train, got, exp, label, hint)


def compare_in_both_modes(model: Any, reference: nn.Module, x: torch.Tensor, label: str, hint: str) -> None:
    """:func:`compare_outputs` in eval mode (running statistics), then in train mode (batch statistics)."""
    compare_outputs(model, reference, x, (False, True), [
        f"{label}(x of shape {_dims(x.shape)}) in {mode} mode, with the reference's weights" for mode in ("eval", "train")],
        hint, f"{label}(x of shape {_dims(x.shape)}) in eval mode, then in train mode, with the reference's weights")


def compare_in_eval_mode(model: Any, reference: nn.Module, x: torch.Tensor, label: str, hint: str) -> None:
    """:func:`compare_outputs` in eval mode, twice on the same x (the second pass checks that x is left alone)."""
    compare_outputs(model, reference, x, (False, False), [label, f"{label}, a second time on the same x"], hint)


def _input(g: np.random.Generator, shape: Sequence[int]) -> torch.Tensor:
    return torch.from_numpy(g.standard_normal(tuple(int(s) for s in shape)))


def _weight_seed(g: np.random.Generator) -> int:
    return int(g.integers(0, 2**31))


# ---------------------------------------------------------------------------------------------
# 1.-2. Residual blocks
# ---------------------------------------------------------------------------------------------

VISIBLE_BASIC = [  # (inplanes, planes, stride, x shape, given a downsample)
    (8, 8, 1, (2, 8, 6, 6), False),     # identity shortcut
    (8, 16, 2, (2, 8, 9, 7), True),     # projection: more channels and stride 2, odd sizes
    (12, 6, 1, (3, 12, 5, 5), True),    # projection for the channels alone
    (6, 6, 2, (2, 6, 7, 8), True),      # projection for the stride alone
    (8, 8, 1, (2, 8, 5, 6), True),      # a downsample the shapes do not need: used all the same
    (8, 16, 2, (2, 8, 9, 7), "avg"),    # ResNet-D's shortcut (average pool, then 1×1 conv): used as given
]
VISIBLE_BOTTLENECK = [
    (16, 4, 1, (2, 16, 6, 6), False),   # identity: inplanes == planes * 4
    (8, 4, 2, (2, 8, 9, 7), True),      # projection, stride 2, odd sizes
    (16, 8, 1, (2, 16, 5, 6), True),    # projection for the channels
    (16, 4, 2, (3, 16, 7, 7), True),    # projection for the stride
    (16, 4, 1, (2, 16, 5, 5), True),    # a downsample the shapes do not need
    (8, 4, 2, (2, 8, 9, 7), "avg"),     # ResNet-D's shortcut
]

_BLOCK_HINTS = {
    "BasicBlock": ("conv1 3×3 (stride here, padding 1), bn1, relu, conv2 3×3 (stride 1, padding 1), bn2; "
                   "convolutions without bias; self.downsample = the downsample argument (a module the "
                   "caller built, or None for the identity shortcut): the block never builds one itself."),
    "Bottleneck": ("conv1 1×1 (planes), bn1, conv2 3×3 (planes, the stride here, padding 1), bn2, conv3 "
                   "1×1 (planes * 4), bn3, relu; convolutions without bias; self.downsample = the downsample "
                   "argument (the caller's module, or None for the identity shortcut)."),
}
_FORWARD_HINTS = {
    "BasicBlock": ("out = relu(bn1(conv1(x))); out = bn2(conv2(out)); out = out + shortcut(x); then "
                   "ReLU after the addition. The shortcut is x itself, or self.downsample(x) whenever a "
                   "downsample was given (applied to the block's input x)."),
    "Bottleneck": ("out = relu(bn1(conv1(x))); out = relu(bn2(conv2(out))); out = bn3(conv3(out)) (no ReLU "
                   "yet); then relu(out + shortcut(x)), the shortcut being x or self.downsample(x). The stride "
                   "sits on the 3×3 conv2 (ResNet v1.5)."),
}


def _block_cases(visible: list, seed: int | None, n: int, expansion: int) -> list:
    if seed is None:
        return list(visible)
    g = rng(seed)
    cases = []
    for _ in range(n):
        planes = int(g.integers(1, 9))
        identity = g.random() < 0.3
        stride = 1 if identity else int(g.choice([1, 2]))
        inplanes = planes * expansion if identity else int(g.integers(1, 17))
        shape = (int(g.integers(2, 4)), inplanes, int(g.integers(1, 12)), int(g.integers(1, 12)))
        given = models.needs_projection(inplanes, planes * expansion, stride) or g.random() < 0.3
        cases.append((inplanes, planes, stride, shape, "avg" if given and g.random() < 0.3 else bool(given)))
    return cases


def _projection(inplanes: int, outplanes: int, stride: int, kind: bool | str) -> tuple[dict, str]:
    """The spec of the downsample a case gives the block, and how a message names it: torchvision's
    projection, or (``kind == "avg"``) ResNet-D's, which averages 2×2 first and convolves with stride 1.
    A block that builds its own shortcut instead of using the one it is given differs in structure and
    outputs from a block holding ResNet-D's."""
    if kind == "avg":
        spec = {"seq": [["0", specnet.layer("AvgPool2d", stride, stride, ceil_mode=True, count_include_pad=False)],
                        ["1", specnet.layer("Conv2d", inplanes, outplanes, 1, bias=False)],
                        ["2", specnet.layer("BatchNorm2d", outplanes)]]}
        return spec, (f"Sequential(AvgPool2d({stride}, {stride}, ceil_mode=True), Conv2d({inplanes}, {outplanes}, 1, "
                      f"bias=False), BatchNorm2d({outplanes}))")
    return (specnet.projection(inplanes, outplanes, stride),
            f"Sequential(Conv2d({inplanes}, {outplanes}, 1, stride={stride}, bias=False), BatchNorm2d({outplanes}))")


def _check_block(Block: Callable, name: str, reference_cls: type, expansion: int, cases: list,
                 g: np.random.Generator) -> None:
    value = _reaching(f"{name}.expansion", lambda: student.op("get", Block, "expansion", "missing"))
    if value != expansion or isinstance(value, bool):
        raise CheckFailure(f"{name}.expansion is {describe(value)}, expected "
                           f"{expansion}.\n  Hint: keep the class attribute `expansion = {expansion}` "
                           "(output channels = planes * expansion; ResNet reads it).")
    side = student.side_of(Block)
    for inplanes, planes, stride, shape, given in cases:
        with case():
            out = planes * expansion
            args: tuple = (inplanes, planes) if stride == 1 else (inplanes, planes, stride)
            if given:  # the downsample is built where the student's code runs, as _make_layer would
                spec, shown = _projection(inplanes, out, stride, given)
                downsample = student.make(side, "make_layers", spec, None)
                args = (inplanes, planes, stride, downsample)
                label = f"{name}({inplanes}, {planes}, {stride}, downsample={shown})"
            else:
                label = signature(name, *args[:2], **({} if stride == 1 else {"stride": stride}))
            model, info = build(Block, label, *args)
            reference = reference_cls(inplanes, planes, stride,
                                      specnet.build(_projection(inplanes, out, stride, given)[0]) if given else None)
            weights = models.reference_weights(reference, _weight_seed(g))
            compare_structure(info, reference, label, _BLOCK_HINTS[name])
            model = load_reference(model, weights, label)
            x = _input(g, shape)
            compare_in_both_modes(model, reference, x, label, _FORWARD_HINTS[name])


def check_basic_block(BasicBlock: Callable, seed: int | None = None, n: int = 6) -> None:
    """BasicBlock(inplanes, planes, stride=1, downsample=None): torchvision's names and shapes, the
    downsample it is given (built in the student's kernel) as its shortcut, and its outputs in eval
    and train mode once it holds the reference's weights."""
    g = rng(501 if seed is None else seed)
    with one_thread():
        _check_block(BasicBlock, "BasicBlock", models.BasicBlock, 1,
                     _block_cases(VISIBLE_BASIC, seed, n, 1), g)


def check_bottleneck(Bottleneck: Callable, seed: int | None = None, n: int = 6) -> None:
    """Bottleneck(inplanes, planes, stride=1, downsample=None): as BasicBlock, with expansion 4 and the
    stride on conv2."""
    g = rng(502 if seed is None else seed)
    with one_thread():
        _check_block(Bottleneck, "Bottleneck", models.Bottleneck, 4,
                     _block_cases(VISIBLE_BOTTLENECK, seed, n, 4), g)


# ---------------------------------------------------------------------------------------------
# 3. ResNet-18/34/50
# ---------------------------------------------------------------------------------------------

_RESNET_HINT = ("conv1 7×7 stride 2 padding 3 (no bias), bn1, relu, maxpool 3×3 stride 2 padding 1, "
                "layer1..layer4 from _make_layer with 64, 128, 256, 512 planes (the first block of "
                "layers 2-4 has stride 2 and, whenever stride != 1 or self.inplanes != planes * "
                "block.expansion, a downsample = Sequential(1×1 conv with the stride, BatchNorm2d) that "
                "_make_layer builds; self.inplanes becomes planes * block.expansion after each stage's "
                "first block), avgpool (adaptive, 1×1), fc from 512 * block.expansion features.")
_RESNET_FORWARD_HINT = ("conv1 → bn1 → relu → maxpool → layer1 → layer2 → layer3 → layer4 → avgpool → "
                        "flatten from dimension 1 → fc.")
_LAYERS = {"resnet18": ("BasicBlock", [2, 2, 2, 2]), "resnet34": ("BasicBlock", [3, 4, 6, 3]),
           "resnet50": ("Bottleneck", [3, 4, 6, 3])}


@lru_cache(maxsize=4)
def _reference_resnet(block: str, layers: tuple, num_classes: int, weight_seed: int) -> tuple[nn.Module, dict]:
    """A reference ResNet with its weights (cached: the weights of a big network take a while to draw)."""
    reference = models.ResNet(getattr(models, block), list(layers), num_classes)
    return reference, models.reference_weights(reference, weight_seed)


def _check_resnet_numerics(factory: Callable, label: str, args: tuple, kwargs: dict, block: str,
                           layers: Sequence[int], num_classes: int, weight_seed: int, x: torch.Tensor) -> None:
    model, info = build(factory, label, *args, **kwargs)
    reference, weights = _reference_resnet(block, tuple(layers), num_classes, weight_seed)
    compare_structure(info, reference, label, _RESNET_HINT)
    model = load_reference(model, weights, label)
    # one pass: a whole ResNet hands x to conv1 and never writes to it (its blocks are checked on their own)
    compare_outputs(model, reference, x, (False,),
                    [f"{label}(x of shape {_dims(x.shape)}) in eval mode, with the reference's weights"],
                    _RESNET_FORWARD_HINT)


def check_resnet(ResNet: Callable, resnet18: Callable, resnet34: Callable, resnet50: Callable,
                 BasicBlock: Callable, Bottleneck: Callable, seed: int | None = None, n: int = 2) -> None:
    """ResNet(block, layers, num_classes) and resnet18/34/50(num_classes): parameter counts (torchvision's
    11,689,512 / 21,797,672 / 25,557,032 at 1000 classes), state_dict keys and shapes, and outputs with
    the reference's weights."""
    factories = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
    blocks = {"BasicBlock": BasicBlock, "Bottleneck": Bottleneck}
    with one_thread():
        if seed is None:
            _visible_resnet(ResNet, factories, blocks)
        else:
            _hidden_resnet(ResNet, factories, blocks, seed, n)


def _structure_of(factory: Callable, name: str, num_classes: int | None) -> None:
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    label = signature(name, **kwargs)
    _, info = build(factory, label, meta=True, **kwargs)
    block, layers = _LAYERS[name]
    with torch.device("meta"):
        reference = models.ResNet(getattr(models, block), layers, 1000 if num_classes is None else num_classes)
    compare_structure(info, reference, label, _RESNET_HINT)


def _visible_resnet(ResNet: Callable, factories: dict, blocks: dict) -> None:
    g = rng(503)
    for name, factory in factories.items():
        with case():
            _structure_of(factory, name, None)
    label = signature("ResNet", blocks["Bottleneck"], [3, 4, 6, 3])  # num_classes by its default, 1000
    with torch.device("meta"):
        reference = models.ResNet(models.Bottleneck, [3, 4, 6, 3])
    compare_structure(build(ResNet, label, blocks["Bottleneck"], [3, 4, 6, 3], meta=True)[1], reference, label,
                      _RESNET_HINT)
    _check_resnet_numerics(factories["resnet18"], "resnet18(num_classes=10)", (), {"num_classes": 10},
                           "BasicBlock", [2, 2, 2, 2], 10, 5031, _input(g, (2, 3, 64, 64)))
    layers = [1, 1, 1, 1]
    _check_resnet_numerics(ResNet, signature("ResNet", blocks["Bottleneck"], layers, num_classes=10),
                           (blocks["Bottleneck"], layers), {"num_classes": 10}, "Bottleneck", layers, 10, 5032,
                           _input(g, (2, 3, 48, 40)))


def _hidden_resnet(ResNet: Callable, factories: dict, blocks: dict, seed: int, n: int) -> None:
    g = rng(seed)
    for name, factory in factories.items():
        with case():
            _structure_of(factory, name, int(g.integers(2, 2000)))
    _check_resnet_numerics(factories["resnet18"], "resnet18(num_classes=10)", (), {"num_classes": 10},
                           "BasicBlock", [2, 2, 2, 2], 10, 5031,
                           _input(g, (int(g.integers(1, 3)), 3, int(g.integers(33, 80)), int(g.integers(33, 80)))))
    for k in range(n):
        with case():
            block = ("BasicBlock", "Bottleneck")[k % 2]
            layers = [int(v) for v in g.integers(1, 3, size=4)]
            num_classes = int(g.integers(2, 20))
            label = signature("ResNet", blocks[block], layers, num_classes=num_classes)
            with torch.device("meta"):
                reference = models.ResNet(getattr(models, block), layers, num_classes)
            compare_structure(build(ResNet, label, blocks[block], layers, meta=True, num_classes=num_classes)[1],
                              reference, label, _RESNET_HINT)
            small = [1, 1, 1, 1] if block == "Bottleneck" else layers  # a Bottleneck stage costs more weights
            x = _input(g, (int(g.integers(1, 3)), 3, int(g.integers(33, 70)), int(g.integers(33, 70))))
            _check_resnet_numerics(ResNet, signature("ResNet", blocks[block], small, num_classes=num_classes),
                                   (blocks[block], small), {"num_classes": num_classes}, block, small, num_classes,
                                   _weight_seed(g), x)


def stage_params(model: nn.Module) -> dict[str, int]:
    """Trainable parameters per top-level child of ``model`` (stem parts, layer1..layer4, fc)."""
    return {name: models.count_params(child) for name, child in model.named_children()}


# ---------------------------------------------------------------------------------------------
# 4. A small CIFAR-style ResNet, trained on real digits
# ---------------------------------------------------------------------------------------------

_CIFAR_HINT = ("conv1 3×3 stride 1 padding 1 (no bias) from in_channels to widths[0], bn1, relu; layer1, "
               "layer2, layer3: nn.Sequential of `blocks` BasicBlocks with widths[0], widths[1], widths[2] "
               "planes, the first block of layer2 and layer3 with stride 2 (each stage starts from the "
               "previous stage's width, and its first block gets a downsample = Sequential(1×1 conv with "
               "the stride, BatchNorm2d) where the width or the stride changes); avgpool (adaptive, 1×1); "
               "fc from widths[-1] features.")
_CIFAR_FORWARD_HINT = "conv1 → bn1 → relu → layer1 → layer2 → layer3 → avgpool → flatten from dimension 1 → fc."

VISIBLE_CIFAR = [  # (constructor kwargs, x shape)
    (dict(), (2, 3, 32, 32)),        # ResNet-20 of He et al., with projection shortcuts
    (dict(NET), (4, 1, 28, 28)),     # the network exercise 5 trains
    (dict(blocks=2, widths=(4, 6, 10), num_classes=3, in_channels=2), (2, 2, 11, 9)),
    (dict(blocks=1, widths=(6, 6, 6), num_classes=4, in_channels=1), (2, 1, 9, 8)),  # projections for the stride alone
]


def _cifar_label(kwargs: dict) -> str:
    return signature("CifarResNet", **kwargs)


def _cifar_cases(seed: int | None, n: int) -> list:
    if seed is None:
        return list(VISIBLE_CIFAR)
    g = rng(seed)
    cases = []
    for _ in range(n):
        kwargs = dict(blocks=int(g.integers(1, 4)), widths=tuple(int(v) for v in np.sort(g.integers(2, 17, size=3))),
                      num_classes=int(g.integers(2, 12)), in_channels=int(g.integers(1, 4)))
        cases.append((kwargs, (int(g.integers(2, 4)), kwargs["in_channels"], int(g.integers(5, 20)),
                               int(g.integers(5, 20)))))
    return cases


def check_cifar_resnet(CifarResNet: Callable, seed: int | None = None, n: int = 2) -> None:
    """CifarResNet(blocks, widths, num_classes, in_channels): structure, outputs (eval and train mode) and
    gradients with the reference's weights; with a seed, also the training run on real digits."""
    g = rng(504 if seed is None else seed)
    with one_thread():
        for kwargs, shape in _cifar_cases(seed, n):
            with case():
                label = _cifar_label(kwargs)
                reference = models.cifar_resnet(**kwargs)
                model, x = _compare_numerics(CifarResNet, reference, label, kwargs, shape, g, _CIFAR_HINT,
                                             _CIFAR_FORWARD_HINT)
                y = torch.from_numpy(g.integers(0, reference.fc.out_features, size=shape[0]))
                compare_gradients(model, reference, x, y, label)
        if seed is not None:
            _check_training(CifarResNet, seed)


def _gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """The reference's gradients of the cross-entropy loss (train mode, float64, on the reference device)."""
    dev = ref.device()
    net = copy.deepcopy(model).to(device=dev, dtype=torch.float64).train()
    loss = F.cross_entropy(net(x.to(device=dev, dtype=torch.float64)), y.to(dev))
    loss.backward()
    return {k: None if p.grad is None else p.grad.detach().cpu() for k, p in net.named_parameters()}


def compare_gradients(model: Any, reference: nn.Module, x: torch.Tensor, y: torch.Tensor, label: str) -> None:
    """The gradient of the cross-entropy loss (train mode) with respect to every parameter."""
    what = f"{label}: gradients of cross_entropy(model(x of shape {_dims(x.shape)}), y) in train mode"
    expected = _gradients(reference, x, y)
    got = _reaching(what, lambda: student.op("gradients", model, x, y),
                    lambda: ("\n  (an in-place operation on a tensor autograd still needs breaks "
                             "backward: write out = out + identity rather than out += identity "
                             "on the block's input)"))
    rtol, atol = tolerance(torch.float64, ref.device().type)
    for name, exp in expected.items():
        value = got.get(name) if isinstance(got, dict) else None
        if not isinstance(value, torch.Tensor):
            raise CheckFailure(f"{what}: no gradient reaches '{name}'.\n  Hint: the loss must depend on every "
                               "parameter through autograd: no .detach(), no torch.no_grad() and no "
                               ".numpy() round trip in forward, and parameters keep requires_grad=True.")
        assert_close(value.to(torch.float64).numpy(), exp.numpy(), name=f"{what}: d loss / d {name}", rtol=rtol,
                     atol=atol, hint="with the same outputs the gradients should agree too; look for a detach or "
                                     "a tensor created from plain numbers in forward.")


@lru_cache(maxsize=1)
def mnist_tensors() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The embedded 5,000 digits as float32 (N, 1, 28, 28) in [0, 1], split by ``datasets.split(seed=0)``
    into 3,500 training, 750 validation and 750 held-out digits."""
    from ..kernel import datasets

    return {name: (torch.tensor(X), torch.tensor(y)) for name, (X, y) in datasets.mnist_splits(np.float32).items()}


def perturbed(X: torch.Tensor, seed: int) -> torch.Tensor:
    """``datasets.perturb_digits`` on a float32 batch (shifts, contrast, noise; depends only on seed)."""
    from ..kernel import datasets

    return torch.from_numpy(datasets.perturb_digits(X.numpy(), seed=seed).astype(np.float32))


def _grader_start(seed: int) -> dict[str, torch.Tensor]:
    """PyTorch's default initialisation of the reference, drawn from ``seed``: the same start for
    every submission, without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return models.cifar_resnet(**NET).state_dict()


def accuracy(state: dict[str, torch.Tensor], X: torch.Tensor, y: torch.Tensor, label: str,
             batch_size: int = 250) -> float:
    """Fraction of ``X`` that the *reference* CifarResNet holding ``state`` classifies as ``y`` (eval
    mode, on the reference device): the trained weights are what the student's code learnt."""
    net = models.cifar_resnet(**NET)
    try:
        net.load_state_dict(state)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckFailure(f"{label}: after training, its weights do not fit the reference architecture "
                           f"({_first_line(exc)}).\n  Hint: keep torchvision's names and shapes (the structure "
                           "checks above).") from None
    return models.accuracy(net, X, y, batch_size)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__


def train_cifar_resnet(CifarResNet: Callable, seed: int = 0, split: str = "val") -> dict:
    """Train ``CifarResNet(**NET)`` with the grading recipe (``TRAIN``: :func:`autograder.recipes.cifar_resnet`,
    run where the student's code is) on the training digits — perturbed afresh each epoch, by the
    grader, from seeds derived from ``seed`` — and measure, here, the accuracy of the trained weights
    in the reference architecture on ``split`` ("val" or "holdout") perturbed with ``seed``.
    Returns dict(state, losses, accuracy, seconds)."""
    data = mnist_tensors()
    label = _cifar_label(NET)
    start = time.perf_counter()
    X, y = data["train"]
    gen = torch.Generator().manual_seed(seed)
    epochs = [perturbed(X, seed + 1 + epoch) for epoch in range(TRAIN["epochs"])]
    orders = [torch.randperm(len(X), generator=gen) for _ in range(TRAIN["epochs"])]
    settings = {k: v for k, v in TRAIN.items() if k != "epochs"}
    with one_thread():
        run = _reaching(label, lambda: recipe("cifar_resnet", CifarResNet, NET, _grader_start(seed), epochs, y, orders,
                                              time_limit=TIME_LIMIT, cpu_seconds=TIME_LIMIT, **settings))
        state = run.get("state") if isinstance(run, dict) else None
        if not isinstance(state, dict):
            raise CheckFailure(f"{label}: the training run returned no weights.")
        X_test, y_test = data[split]
        acc = accuracy(state, perturbed(X_test, seed), y_test, label)
    return dict(state=state, losses=[float(v) for v in run.get("losses", [])], accuracy=acc,
                seconds=time.perf_counter() - start)


def _check_training(CifarResNet: Callable, seed: int) -> None:
    run = train_cifar_resnet(CifarResNet, seed=seed, split="holdout")
    losses = run["losses"] or [float("nan")]
    if run["accuracy"] < THRESHOLD:
        raise CheckFailure(
            f"{_cifar_label(NET)} trained on 3,500 digits ({TRAIN['epochs']} epoch, batch "
            f"{TRAIN['batch_size']}, SGD lr {TRAIN['lr']:g} momentum {TRAIN['momentum']:g}): accuracy "
            f"{run['accuracy']:.3f} on the perturbed held-out digits, below the required {THRESHOLD:.2f} "
            f"(loss {losses[0]:.3f} -> {losses[-1]:.3f}).\n  Hint: a correct network reaches about 0.88; "
            "if the outputs and gradients above pass, look for a forward that behaves differently in "
            "train and eval mode.")
    print(f"cifar_resnet: held-out accuracy {run['accuracy']:.3f} (required {THRESHOLD:.2f}), "
          f"trained in {run['seconds']:.1f} s")


# ---------------------------------------------------------------------------------------------
# 5. Squeeze-and-excitation
# ---------------------------------------------------------------------------------------------

VISIBLE_SE = [(16, 4, (2, 16, 5, 5)), (8, 2, (3, 8, 7, 6)), (6, 12, (1, 6, 1, 1)), (32, 8, (2, 32, 3, 4))]
_SE_HINT = ("avgpool = nn.AdaptiveAvgPool2d(1); fc1 = nn.Conv2d(input_channels, squeeze_channels, 1); "
            "fc2 = nn.Conv2d(squeeze_channels, input_channels, 1) (both with bias); activation = nn.ReLU(); "
            "scale_activation = nn.Sigmoid().")
_SE_FORWARD_HINT = ("scale = sigmoid(fc2(relu(fc1(avgpool(x))))) has shape (N, C, 1, 1), one number in (0, 1) "
                    "per image and channel; return x * scale (broadcast over H and W).")


def check_se_block(SqueezeExcitation: Callable, seed: int | None = None, n: int = 8) -> None:
    """SqueezeExcitation(input_channels, squeeze_channels): torchvision's names and shapes, and its outputs
    once it holds the reference's weights."""
    g = rng(505 if seed is None else seed)
    cases = list(VISIBLE_SE)
    if seed is not None:
        cases = []
        for _ in range(n):
            C, S = int(g.integers(1, 33)), int(g.integers(1, 17))
            cases.append((C, S, (int(g.integers(1, 4)), C, int(g.integers(1, 10)), int(g.integers(1, 10)))))
    with one_thread():
        for C, S, shape in cases:
            with case():
                label = signature("SqueezeExcitation", C, S)
                model, info = build(SqueezeExcitation, label, C, S)
                reference = models.SqueezeExcitation(C, S)
                weights = models.reference_weights(reference, _weight_seed(g))
                compare_structure(info, reference, label, _SE_HINT)
                model = load_reference(model, weights, label)
                compare_in_eval_mode(model, reference, _input(g, shape),
                                     f"{label}(x of shape {_dims(shape)}), with the reference's weights", _SE_FORWARD_HINT)


# ---------------------------------------------------------------------------------------------
# 6. DenseNet's dense layer, dense block and transition
# ---------------------------------------------------------------------------------------------

VISIBLE_DENSE_LAYER = [  # (num_input_features, growth_rate, bn_size, x shape)
    (6, 4, 2, (2, 6, 5, 5)),
    (10, 3, 4, (3, 10, 6, 7)),
    (5, 8, 1, (2, 5, 4, 3)),
]
VISIBLE_DENSE_BLOCK = [  # (num_layers, num_input_features, bn_size, growth_rate, x shape)
    (1, 4, 2, 3, (2, 4, 5, 5)),
    (3, 6, 2, 4, (2, 6, 6, 5)),
    (4, 5, 3, 2, (3, 5, 4, 4)),
]
VISIBLE_TRANSITION = [  # (num_input_features, num_output_features, x shape)
    (8, 4, (2, 8, 6, 6)),
    (12, 6, (3, 12, 7, 9)),   # odd sizes: the 2×2 average pool floors
    (5, 2, (2, 5, 2, 3)),
]
_DENSE_LAYER_HINT = ("norm1 = BatchNorm2d(num_input_features), relu1, conv1 = 1×1 conv num_input_features → "
                     "bn_size * growth_rate (no bias), norm2 = BatchNorm2d(bn_size * growth_rate), relu2, conv2 = 3×3 "
                     "conv bn_size * growth_rate → growth_rate (padding 1, no bias).")
_DENSE_LAYER_FORWARD = ("conv2(relu2(norm2(conv1(relu1(norm1(x)))))): BatchNorm and ReLU come *before* each "
                        "convolution (pre-activation), and the layer returns only its growth_rate new channels.")
_DENSE_BLOCK_HINT = ("num_layers DenseLayers named denselayer1, denselayer2, ... (self.add_module(f\"denselayer{i + 1}\", "
                     "...)); layer i + 1 takes num_input_features + i * growth_rate channels. Mind torchvision's "
                     "argument order: DenseBlock(num_layers, num_input_features, bn_size, growth_rate).")
_DENSE_BLOCK_FORWARD = ("features = [x]; for each layer: features.append(layer(torch.cat(features, dim=1))); return "
                        "torch.cat(features, dim=1): channels concatenated in order, the input first, then each layer's "
                        "new features; nothing is added.")
_TRANSITION_HINT = ("norm = BatchNorm2d(num_input_features), relu, conv = 1×1 conv num_input_features → "
                    "num_output_features (no bias), pool = nn.AvgPool2d(kernel_size=2, stride=2).")
_TRANSITION_FORWARD = "pool(conv(relu(norm(x)))): it compresses the channels and halves the height and width."


def _dense_cases(seed: int | None, n: int) -> tuple[list, list, list]:
    if seed is None:
        return list(VISIBLE_DENSE_LAYER), list(VISIBLE_DENSE_BLOCK), list(VISIBLE_TRANSITION)
    g = rng(seed)

    def size() -> tuple[int, int, int]:  # (N, H, W)
        return int(g.integers(2, 4)), int(g.integers(1, 9)), int(g.integers(1, 9))

    layers, blocks, transitions = [], [], []
    for _ in range(n):
        c, k, b = int(g.integers(1, 13)), int(g.integers(1, 9)), int(g.integers(1, 5))
        s = size()
        layers.append((c, k, b, (s[0], c, s[1], s[2])))
        L, c, b, k = int(g.integers(1, 5)), int(g.integers(1, 9)), int(g.integers(1, 4)), int(g.integers(1, 6))
        if b == k:
            b += 1  # so that swapping bn_size and growth_rate shows
        s = size()
        blocks.append((L, c, b, k, (s[0], c, s[1], s[2])))
        c = int(g.integers(2, 17))
        s = size()
        transitions.append((c, int(g.integers(1, c + 1)), (s[0], c, int(g.integers(2, 12)), int(g.integers(2, 12)))))
    return layers, blocks, transitions


def _compare_module(factory: Callable, name: str, args: tuple, reference: nn.Module, shape: Sequence[int],
                    hint: str, forward_hint: str, g: np.random.Generator) -> None:
    label = signature(name, *args)
    model, info = build(factory, label, *args)
    weights = models.reference_weights(reference, _weight_seed(g))
    compare_structure(info, reference, label, hint)
    model = load_reference(model, weights, label)
    compare_in_both_modes(model, reference, _input(g, shape), label, forward_hint)


def check_dense_block(DenseLayer: Callable, DenseBlock: Callable, Transition: Callable, seed: int | None = None,
                      n: int = 3) -> None:
    """DenseLayer(num_input_features, growth_rate, bn_size), DenseBlock(num_layers, num_input_features,
    bn_size, growth_rate) and Transition(num_input_features, num_output_features): torchvision's names
    and shapes (``_DenseLayer``, ``_DenseBlock``, ``_Transition``), and their outputs in eval and train
    mode with the reference's weights."""
    g = rng(506 if seed is None else seed)
    layers, blocks, transitions = _dense_cases(seed, n)
    with one_thread():
        for c, k, b, shape in layers:
            with case():
                _compare_module(DenseLayer, "DenseLayer", (c, k, b), models._DenseLayer(c, k, b), shape,
                                _DENSE_LAYER_HINT, _DENSE_LAYER_FORWARD, g)
        for L, c, b, k, shape in blocks:
            with case():
                _compare_module(DenseBlock, "DenseBlock", (L, c, b, k), models._DenseBlock(L, c, b, k), shape,
                                _DENSE_BLOCK_HINT, _DENSE_BLOCK_FORWARD, g)
        for c, out, shape in transitions:
            with case():
                _compare_module(Transition, "Transition", (c, out), models._Transition(c, out), shape, _TRANSITION_HINT,
                                _TRANSITION_FORWARD, g)


# ---------------------------------------------------------------------------------------------
# 7. DenseNet-121
# ---------------------------------------------------------------------------------------------

_DENSENET_HINT = ("features = nn.Sequential with conv0 (7×7 stride 2 padding 3, no bias; 3×3 stride 1 padding 1 "
                  "when small_input), norm0, relu0, pool0 (3×3 max pool, stride 2, padding 1; none when "
                  "small_input), then denseblock1, transition1, ..., denseblockK (a transition after every block "
                  "but the last, halving the channels: num_features // 2), norm5; classifier = Linear(num_features, "
                  "num_classes). densenet121 = DenseNet(32, (6, 12, 24, 16), 64), 7,978,856 parameters.")
_DENSENET_FORWARD = ("features(x), then F.relu (norm5 is followed by a ReLU), global average pooling to 1×1, "
                     "flatten from dimension 1, classifier.")
VISIBLE_DENSENET = [  # (constructor kwargs, x shape)
    (dict(growth_rate=4, block_config=(2, 2, 2), num_init_features=8, bn_size=2, num_classes=10, in_channels=1,
          small_input=True), (2, 1, 28, 28)),           # a DenseNet for the digits
    (dict(growth_rate=3, block_config=(1, 2, 1), num_init_features=6, bn_size=2, num_classes=5), (2, 3, 37, 33)),
]


def _densenet_label(kwargs: dict) -> str:
    return signature("DenseNet", **kwargs)


def _densenet_structure(factory: Callable, label: str, kwargs: dict, num_classes: int) -> None:
    _, info = build(factory, label, meta=True, **kwargs)
    with torch.device("meta"):
        reference = models.densenet121(num_classes)
    compare_structure(info, reference, label, _DENSENET_HINT)


def _densenet_numerics(DenseNet: Callable, kwargs: dict, shape: Sequence[int], g: np.random.Generator) -> None:
    _compare_numerics(DenseNet, models.DenseNet(**kwargs), _densenet_label(kwargs), kwargs, shape, g, _DENSENET_HINT,
                      _DENSENET_FORWARD)


def _compare_numerics(factory: Callable, reference: nn.Module, label: str, kwargs: dict, shape: Sequence[int],
                      g: np.random.Generator, hint: str, forward_hint: str) -> tuple[Any, torch.Tensor]:
    """The student's network built with ``kwargs``: its structure against ``reference``'s, then, with
    the reference's weights drawn from ``g`` loaded into it, its outputs on an input of ``shape`` in
    eval and train mode. Returns (the loaded model, the input)."""
    model, info = build(factory, label, **kwargs)
    weights = models.reference_weights(reference, _weight_seed(g))
    compare_structure(info, reference, label, hint)
    model = load_reference(model, weights, label)
    x = _input(g, shape)
    compare_in_both_modes(model, reference, x, label, forward_hint)
    return model, x


def _densenet_cases(g: np.random.Generator, n: int) -> list:
    cases = []
    for _ in range(n):
        L = int(g.integers(1, 4))
        small = bool(g.random() < 0.5)
        kwargs = dict(growth_rate=int(g.integers(1, 6)), block_config=tuple(int(v) for v in g.integers(1, 4, size=L)),
                      num_init_features=int(g.integers(2, 11)), bn_size=int(g.integers(1, 4)),
                      num_classes=int(g.integers(2, 12)), in_channels=int(g.integers(1, 4)), small_input=small)
        least = 2 ** (L - 1) * (1 if small else 4)
        # two or more images: norm5 in train mode needs more than one value per channel, and the last
        # map may be 1×1
        cases.append((kwargs, (int(g.integers(2, 4)), kwargs["in_channels"], int(g.integers(least, least + 14)),
                               int(g.integers(least, least + 14)))))
    return cases


def check_densenet(DenseNet: Callable, densenet121: Callable, seed: int | None = None, n: int = 2) -> None:
    """DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
    num_classes=1000, in_channels=3, small_input=False) and densenet121(num_classes=1000): torchvision's
    7,978,856 parameters, state_dict names and shapes (built on the meta device), and the outputs of
    small DenseNets with the reference's weights, in eval and train mode."""
    g = rng(507 if seed is None else seed)
    with one_thread():
        if seed is None:
            _densenet_structure(densenet121, "densenet121()", {}, 1000)
            _densenet_structure(DenseNet, "DenseNet()", {}, 1000)
            cases = list(VISIBLE_DENSENET)
        else:
            k = int(g.integers(2, 2000))
            _densenet_structure(densenet121, f"densenet121(num_classes={k})", {"num_classes": k}, k)
            cases = _densenet_cases(g, n)
        for kwargs, shape in cases:
            with case():
                _densenet_numerics(DenseNet, kwargs, shape, g)
