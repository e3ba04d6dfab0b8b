"""Checks for assignment a6_visualisation: what a trained ConvNet looks at — saliency maps,
occlusion sensitivity, Grad-CAM, class visualisation by gradient ascent, and adversarial examples
(FGSM), in PyTorch.

Every function takes a model the grader makes where the student's code runs (a small ConvNet
described as data, :mod:`autograder.specnet`: conv, BatchNorm, ReLU, pooling, conv, ReLU, pooling,
dropout, linear). It is handed over **in training mode**, as a model fresh from its training loop
is: dropout active, BatchNorm on batch statistics, so a function that forgets ``model.eval()``
gives different — and random — answers.

Two kinds of check:

* **against references** — the same network, rebuilt here from the same description and weights,
  in float64 on the reference device (:func:`autograder.reference.device`: the GPU when present).
  Saliency, occlusion, Grad-CAM and FGSM must match it, on networks with random weights of many
  shapes (1 or 3 channels, non-square images, 3–10 classes) and on the trained digit network;
* **by properties a lookup cannot fake**, on the trained network and held-out digits: occluding the
  patch the saliency map marks as most important lowers the class score more than an average
  patch does (12 digits together: true of the reference in all of 300 draws tried); the class
  visualisation is classified as its class with high probability, its L2 penalty shrinks it, the
  default seed gives the image ``seed=0`` gives, and the caller's model keeps the weights and
  BatchNorm statistics the judge loaded (its ``state_dict`` compared with the judge's copy); FGSM at
  ``EPS_FLIP`` turns at least ``FLIP_SHARE`` of correctly classified digits into mistakes.

When values differ, the message says which known slip the answer matches, if it matches one (the
absolute value forgotten, the loss's gradient instead of the score's, a mean over the channels...).
Without ``seed`` a check runs its visible cases; with ``seed`` it runs ``n`` random configurations
drawn from that seed (the hidden tests). PyTorch runs on one CPU thread inside the checks.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import models
from ..kernel import specnet, student
from .. import reference as ref
from ..kernel.checks import CheckFailure, assert_close, guarded
from ..kernel.checks import case as a_case  # "case" is what this module calls a (network, x, y)
from ..secret import seeds_for
from ..kernel.seed import rng
from . import dims, one_torch_thread, single_threaded
from . import float_array as _array, quiet_call as _run

hidden_seed = seeds_for(__name__)  # the hidden tests' seeds come from the course secret

F64 = torch.float64
RTOL, ATOL = 1e-3, 1e-4  # float32 answers against float64 references (ATOL relative to the largest entry)
TRAIN = dict(epochs=3, batch_size=64, lr=3e-3, seed=0)  # the grader's digit network (about 96 % held out)
EPS_FLIP = 0.25  # FGSM's property: the step size ...
FLIP_SHARE = 0.5  # ... and the share of correctly classified held-out digits it must turn into mistakes
VIS_PROBABILITY = 0.8  # class visualisation: the probability the network must give the class
LAYERS = ("conv1", "bn1", "relu1", "pool1", "conv2", "relu2", "pool2")  # layers a Grad-CAM may look at


# ---------------------------------------------------------------------------------------------
# The networks: described as data, built here and in the student's kernel
# ---------------------------------------------------------------------------------------------

def visnet(in_channels: int = 1, size: tuple[int, int] = (28, 28), num_classes: int = 10,
           widths: tuple[int, int] = (8, 16), p: float = 0.25) -> dict:
    """The spec of the small ConvNet every check uses; ``size`` must be a multiple of 4."""
    a, b = widths
    h, w = size
    L = specnet.layer
    return {"seq": [
        ["conv1", L("Conv2d", in_channels, a, 3, padding=1)], ["bn1", L("BatchNorm2d", a)], ["relu1", L("ReLU")],
        ["pool1", L("MaxPool2d", 2)], ["conv2", L("Conv2d", a, b, 3, padding=1)], ["relu2", L("ReLU")],
        ["pool2", L("MaxPool2d", 2)], ["flatten", L("Flatten")], ["dropout", L("Dropout", p)],
        ["fc", L("Linear", b * (h // 4) * (w // 4), num_classes)]]}


def _weights(spec: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for ``spec`` (He-scaled, BatchNorm with non-trivial statistics), as float32."""
    net = specnet.build(spec)
    state = models.reference_weights(net, seed)
    return {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()}


@lru_cache(maxsize=1)
def digits() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The embedded digits, float32 (N, 1, 28, 28) in [0, 1]: "train", "val", "holdout"."""
    from ..kernel import datasets

    return {name: (torch.tensor(X), torch.tensor(y)) for name, (X, y) in datasets.mnist_splits(np.float32).items()}


@lru_cache(maxsize=1)
def trained() -> tuple[dict, dict[str, torch.Tensor]]:
    """(spec, float32 weights) of the grader's digit network: ``visnet()`` trained with Adam on the
    3,500 training digits, ``TRAIN["epochs"]`` epochs, seeded — the same network on every machine
    and in every run (about three seconds on one core)."""
    spec = visnet()
    X, y = digits()["train"]
    with torch.random.fork_rng(devices=[]), one_torch_thread():
        torch.manual_seed(TRAIN["seed"])
        net = specnet.build(spec)
        opt = torch.optim.Adam(net.parameters(), lr=TRAIN["lr"])
        order = torch.Generator().manual_seed(TRAIN["seed"])
        net.train()
        for _ in range(TRAIN["epochs"]):
            for idx in torch.randperm(len(X), generator=order).split(TRAIN["batch_size"]):
                opt.zero_grad()
                F.cross_entropy(net(X[idx]), y[idx]).backward()
                opt.step()
    return spec, {k: v.detach().clone() for k, v in net.state_dict().items()}


def trained_model() -> nn.Module:
    """The grader's trained digit network, in eval mode (for the notebook's figures)."""
    spec, weights = trained()
    net = specnet.build(spec)
    net.load_state_dict(weights)
    return net.eval()


def held_out(n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The 750 held-out digits (or the first ``n``), never trained on."""
    X, y = digits()["holdout"]
    return (X, y) if n is None else (X[:n], y[:n])


def examples(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` held-out digits, classes in turn (0, 1, ..., 9, 0, 1, ...): the held-out digits
    themselves are sorted by class."""
    X, y = held_out()
    return X[example_indices(n)], y[example_indices(n)]


def example_indices(n: int) -> list[int]:
    _, y = held_out()
    by_class = [np.flatnonzero(y.numpy() == c) for c in range(10)]
    return [int(by_class[k % 10][k // 10]) for k in range(n)]


# ---------------------------------------------------------------------------------------------
# References: float64, eval mode, on the reference device
# ---------------------------------------------------------------------------------------------

def reference_net(spec: dict, weights: dict[str, torch.Tensor]) -> nn.Module:
    net = specnet.build(spec)
    net.load_state_dict(weights)
    return net.to(device=ref.device(), dtype=F64).eval()


def _dev(x: torch.Tensor) -> torch.Tensor:
    return x.to(device=ref.device(), dtype=F64)


def _picked(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return scores.gather(1, y.to(scores.device).view(-1, 1)).sum()


def reference_saliency(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, absolute: bool = True,
                       reduce: str = "max", target: str = "score") -> torch.Tensor:
    """max over channels of |d s_y / d x| (Simonyan et al. 2013); the keywords give the slips."""
    x = _dev(x).requires_grad_(True)
    scores = net(x)
    if target == "score":
        out = _picked(scores, y)
    elif target == "loss":
        out = F.cross_entropy(scores, y.to(scores.device))  # the mean, as F.cross_entropy gives it
    elif target == "all":
        out = scores.sum()
    elif target == "probability":
        out = _picked(F.softmax(scores, 1), y)
    else:
        raise ValueError(target)
    (grad,) = torch.autograd.grad(out, x)
    grad = grad.abs() if absolute else grad
    return (grad.amax(1) if reduce == "max" else grad.mean(1) if reduce == "mean" else grad.sum(1)).cpu()


def _class_values(net: nn.Module, x: torch.Tensor, y: torch.Tensor, probability: bool = True,
                  chunk: int = 512) -> torch.Tensor:
    """Each example's softmax probability of its class y (or its raw score), without gradients."""
    out = []
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            scores = net(_dev(x[s:s + chunk]))
            values = F.softmax(scores, 1) if probability else scores
            out.append(values.gather(1, y[s:s + chunk].to(values.device).view(-1, 1))[:, 0].cpu())
    return torch.cat(out)


def occlusion_positions(size: tuple[int, int], patch: int, stride: int) -> tuple[int, int]:
    return (size[0] - patch) // stride + 1, (size[1] - patch) // stride + 1


def reference_occlusion(net: nn.Module, x: torch.Tensor, y: torch.Tensor, patch: int, stride: int,
                        fill: float = 0.0, *, scores: bool = False) -> torch.Tensor:
    """[n, i, j] = p_y(x) - p_y(x with the patch at (i*stride, j*stride) set to ``fill``) (Zeiler and
    Fergus, ECCV 2014); with ``scores``, the drop of the raw class score (a slip)."""
    N, C, H, W = x.shape
    ho, wo = occlusion_positions((H, W), patch, stride)
    copies = x.to(F64).repeat_interleave(ho * wo, dim=0).view(N, ho, wo, C, H, W)
    for i in range(ho):
        for j in range(wo):
            copies[:, i, j, :, i * stride:i * stride + patch, j * stride:j * stride + patch] = fill
    copies = copies.view(-1, C, H, W)
    labels = y.repeat_interleave(ho * wo)
    base, occ = _class_values(net, x, y, not scores), _class_values(net, copies, labels, not scores)
    return base.view(N, 1, 1) - occ.view(N, ho, wo)


def reference_grad_cam(net: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor, *, relu: bool = True,
                       weights: str = "mean", target: str = "score", relu_a: bool = False) -> torch.Tensor:
    """ReLU(sum_k alpha_k A_k), alpha_k = mean over the map of d s_y / d A_k (Selvaraju et al. 2017),
    at the layer's resolution; the keywords give the slips."""
    seen: dict[str, torch.Tensor] = {}
    handle = net.get_submodule(layer).register_forward_hook(lambda _m, _i, out: seen.setdefault("A", out))
    try:
        scores = net(_dev(x))
    finally:
        handle.remove()
    A = seen["A"]
    out = _picked(scores, y) if target == "score" else F.cross_entropy(scores, y.to(scores.device))
    (grad,) = torch.autograd.grad(out, A)
    if weights == "mean":
        alpha = grad.mean((2, 3), keepdim=True)
    elif weights == "sum":
        alpha = grad.sum((2, 3), keepdim=True)
    else:  # "pixel": the gradient itself, element by element
        alpha = grad
    cam = (alpha * (F.relu(A) if relu_a else A)).sum(1)
    return (F.relu(cam) if relu else cam).detach().cpu()


def reference_fgsm(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(clamp(x + eps * sign(d loss / d x), 0, 1), the gradient) (Goodfellow et al. 2014)."""
    xd = _dev(x).requires_grad_(True)
    loss = F.cross_entropy(net(xd), y.to(xd.device), reduction="sum")
    (grad,) = torch.autograd.grad(loss, xd)
    return (xd + eps * grad.sign()).clamp(0, 1).detach().cpu(), grad.cpu()


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------

class Case:
    """A network (spec and weights), a batch and its labels, and how messages name them."""

    def __init__(self, spec: dict, weights: dict, x: torch.Tensor, y: torch.Tensor, what: str):
        self.spec, self.weights, self.x, self.y, self.what = spec, weights, x, y, what

    def net(self) -> nn.Module:
        return reference_net(self.spec, self.weights)

    def model_for(self, fn: Any) -> Any:
        """The network, made where ``fn`` runs, in training mode (as it comes out of training)."""
        return student.make(student.side_of(fn), "make_model", self.spec, self.weights, "float32", True)

    def label(self, name: str, *extra: str) -> str:
        ys = self.y.tolist()
        shown = str(ys) if len(ys) <= 6 else str(ys[:6])[:-1] + ", ...]"
        return f"{name}(model: {self.what}, x {dims(self.x.shape)}, y {shown}" + "".join(f", {e}" for e in extra) + ")"


def _random_case(g: np.random.Generator, n_max: int = 3) -> Case:
    C = int(g.choice([1, 3]))
    H, W = (int(v) * 4 for v in g.integers(2, 6, size=2))
    K = int(g.integers(3, 11))
    widths = (int(g.choice([4, 6, 8])), int(g.choice([4, 8, 12])))
    spec = visnet(C, (H, W), K, widths)
    N = int(g.integers(1, n_max + 1))
    x = torch.from_numpy(g.random((N, C, H, W)).astype(np.float32))
    y = torch.from_numpy(g.integers(0, K, size=N).astype(np.int64))
    return Case(spec, _weights(spec, int(g.integers(2**31))), x, y, f"{C}×{H}×{W} → {K} classes, random weights")


def _digit_case(idx: list[int]) -> Case:
    spec, weights = trained()
    X, y = held_out()
    return Case(spec, weights, X[idx].clone(), y[idx].clone(), "the trained digit network")


def _random_digits(g: np.random.Generator, n: int) -> Case:
    """``n`` held-out digits drawn from ``g``, on the trained digit network."""
    return _digit_case(sorted(int(i) for i in g.choice(len(held_out()[0]), size=n, replace=False)))


def _cases(visible: list[Case], seed: int | None, n: int) -> list[Case]:
    if seed is None:
        return visible
    g = rng(seed)
    cases = [_random_case(g) for _ in range(n)]
    return cases + [_random_digits(g, 4)]


def _visible() -> list[Case]:
    g = rng(606)
    spec = visnet(3, (12, 16), 5, (6, 8))
    x = torch.from_numpy(g.random((2, 3, 12, 16)).astype(np.float32))
    return [Case(spec, _weights(spec, 6060), x, torch.tensor([1, 4]), "3×12×16 → 5 classes, random weights"),
            _digit_case([example_indices(10)[c] for c in (3, 5, 8)])]


# ---------------------------------------------------------------------------------------------
# Comparing an answer
# ---------------------------------------------------------------------------------------------

def _normalised(maps: torch.Tensor, lowest: bool = False) -> torch.Tensor:
    """Each map (N, h, w) scaled to a maximum of 1 (``lowest``: to [0, 1], min-max), as a figure draws it."""
    low = maps.amin(dim=(1, 2), keepdim=True) if lowest else torch.zeros_like(maps[:, :1, :1])
    return (maps - low) / (maps.amax(dim=(1, 2), keepdim=True) - low).clamp_min(1e-12)


NORMALISED = ("a map scaled to [0, 1] (divided by its maximum); return the raw map, as the formula gives it: "
              "scaling it is for drawing it")


def _matches(got: np.ndarray, expected: torch.Tensor) -> bool:
    e = expected.numpy()
    return got.shape == e.shape and bool(np.all(np.abs(got - e) <= ATOL * max(1.0, np.abs(e).max()) + RTOL * np.abs(e)))


def _slip(got: np.ndarray, slips: list[tuple[str, Callable[[], torch.Tensor]]]) -> str | None:
    for words, variant in slips:
        try:
            if _matches(got, variant()):
                return words
        except Exception:  # noqa: BLE001 - a variant that does not apply to this case
            continue
    return None


def _training_left(model: Any) -> bool:
    try:
        return bool(student.op("get", model, "training"))
    except Exception:  # noqa: BLE001
        return False


def _diagnosed(arr: np.ndarray, slips: list[tuple[str, Callable[[], torch.Tensor]]], model: Any, hint: str) -> str:
    """``hint``, led by the known slip the wrong answer matches, or else by the model's mode if the
    function left it training."""
    slip = _slip(arr, slips)
    if slip:
        return f"your answer is what {slip} gives. {hint}"
    if _training_left(model):
        return ("the model came in training mode and is still in it: dropout drops random units and "
                f"BatchNorm uses the batch's statistics. Call model.eval() first. {hint}")
    return hint


def _compare(got: Any, expected: torch.Tensor, label: str, what: str, hint: str,
             slips: list[tuple[str, Callable[[], torch.Tensor]]], model: Any) -> np.ndarray:
    arr = _array(got, label, f"{what} of shape {dims(expected.shape)}")
    if arr.shape == expected.shape and _matches(arr, expected):
        return arr
    if arr.shape == tuple(expected.shape):
        hint = _diagnosed(arr, slips, model, hint)
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    assert_close(arr, expected.numpy(), name=label, rtol=RTOL, atol=ATOL * max(1.0, scale), hint=hint)
    return arr


def _call_on_held(fn: Callable, case: Case, before: tuple, after: tuple, label: str, **kwargs: Any) -> tuple[Any, Any]:
    """``fn(*before, x, y, *after, **kwargs)`` where it lives, with x a batch the kernel keeps (what the
    call does to it stays there, for :func:`_left_alone` to see); (the answer, that x)."""
    held = student.make(student.side_of(fn), "hold", case.x.clone())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = guarded(label, lambda: student.op("call_with", fn, *before, held, case.y.clone(), *after, **kwargs))
    return got, held


def _left_alone(model: Any, held: Any, case: Case, net: nn.Module, label: str) -> None:
    """What the call left behind, by its consequences: afterwards the model, run in eval mode, must still
    give the network's scores on another batch (a hook left on the model shows when it returns a value —
    ``lambda m, i, out: seen.setdefault("A", out)`` does — since it then replaces the layer's output, on
    every later run, with the first call's; so does a run in training mode, which updates BatchNorm's
    statistics), and on the x it was given (an x changed in place shows)."""
    hint = ("work on a copy of x (x.clone()), and leave the model as you found it but for its mode: every hook you "
            "register removed again (handle.remove(), in a `finally:` block), no run in training mode.")
    checks = (("on another batch", (1 - case.x).flip(-1), None,
               "the call left the model changed: a hook left behind still runs, and one that returns a value "
               "replaces its layer's output"),
              ("on the x it was given", case.x, held, "the call modified x in place"))
    _scores_after(model, net, label, checks,
                  broken=lambda what, error: f"{label} left the model broken: afterwards, model(x) {what} (eval mode) "
                                            f"raised {error}.\n  Hint: {hint}",
                  changed=lambda what, cause: f"{label}: afterwards, model(x) {what} (eval mode) no longer gives the "
                                              f"network's scores: {cause}.\n  Hint: {hint}")


def _scores_after(model: Any, net: nn.Module, label: str, checks: tuple, broken: Callable[[str, str], str],
                  changed: Callable[[str, str], str], kind: str = "check") -> None:
    """The model after the student's call, by its consequences: for each (what, batch, the x held in the
    kernel or None, cause) of ``checks``, the model run in eval mode on it must give ``net``'s scores on
    that batch; ``broken(what, error)`` and ``changed(what, cause)`` word the failure."""
    for what, batch, given, cause in checks:
        with torch.no_grad():
            expected = net(_dev(batch)).cpu()
        try:
            got = student.op("forward", model, batch if given is None else given, train=False, dtype="float32")
        except Exception as exc:  # noqa: BLE001 - the model's own crash, after the student's call
            error = f"{getattr(exc, 'type_name', type(exc).__name__)}: {exc}"
            raise CheckFailure(broken(what, error), kind) from None
        if not _matches(_array(got, label, "the model's scores"), expected):
            raise CheckFailure(changed(what, cause), kind)


# ---------------------------------------------------------------------------------------------
# 1. Saliency
# ---------------------------------------------------------------------------------------------

SALIENCY_HINT = ("backpropagate the score of each example's own class — scores.gather(1, y.view(-1, 1)).sum() "
                 "— to an input that requires grad, take the absolute value of x.grad and the maximum over "
                 "the channel axis (dim=1).")


def _check_saliency_case(saliency_map: Callable, case: Case) -> np.ndarray:
    label = case.label("saliency_map")
    net = case.net()
    expected = reference_saliency(net, case.x, case.y)
    model = case.model_for(saliency_map)
    got, held = _call_on_held(saliency_map, case, (model,), (), label)
    slips = [("the gradient without its absolute value", lambda: reference_saliency(net, case.x, case.y, absolute=False)),
             ("the mean over the channels instead of the maximum",
              lambda: reference_saliency(net, case.x, case.y, reduce="mean")),
             ("the sum over the channels instead of the maximum",
              lambda: reference_saliency(net, case.x, case.y, reduce="sum")),
             ("the gradient of the loss instead of the class score",
              lambda: reference_saliency(net, case.x, case.y, target="loss")),
             ("the gradient of the sum of all the scores (every class, not y's)",
              lambda: reference_saliency(net, case.x, case.y, target="all")),
             ("the gradient of the softmax probability instead of the raw score",
              lambda: reference_saliency(net, case.x, case.y, target="probability")),
             (NORMALISED, lambda: _normalised(expected)), (NORMALISED, lambda: _normalised(expected, lowest=True))]
    arr = _compare(got, expected, label, "a saliency map", SALIENCY_HINT, slips, model)
    _left_alone(model, held, case, net, label)
    return arr


def _check_saliency_property(saliency_map: Callable, seed: int, patch: int = 6, stride: int = 2, n: int = 12) -> None:
    """Occluding the most salient patch must lower the class score more than an average patch does."""
    case = _random_digits(rng(seed), n)
    label = case.label("saliency_map")
    got = _array(_run(saliency_map, case.model_for(saliency_map), case.x.clone(), case.y.clone(), label=label),
                 label, "a saliency map")
    sal = torch.from_numpy(got).view(n, 1, 28, 28)
    mass = F.avg_pool2d(sal, patch, stride)[:, 0]  # saliency inside each patch position
    drops = reference_occlusion(case.net(), case.x, case.y, patch, stride, scores=True)  # the raw score:
    # the probability of a confident network hardly moves, wherever the patch goes
    top = mass.flatten(1).argmax(1)
    salient = drops.flatten(1).gather(1, top.view(-1, 1)).mean().item()
    average = drops.mean().item()
    if not salient > average:
        raise CheckFailure(
            f"{label}: occluding the {patch}×{patch} patch your map marks as most salient lowers the class "
            f"score by {salient:.3f} on average, no more than an average patch does ({average:.3f}).\n"
            f"  Hint: the map must say where the score is sensitive; {SALIENCY_HINT}")


@single_threaded
def check_saliency_map(saliency_map: Callable, seed: int | None = None, n: int = 4) -> None:
    """saliency_map(model, x, y) -> (N, H, W): max over channels of |d s_y / d x|, the model in eval mode."""
    for case in _cases(_visible(), seed, n):
        with a_case():
            _check_saliency_case(saliency_map, case)
    if seed is not None:
        _check_saliency_property(saliency_map, seed + 1)


# ---------------------------------------------------------------------------------------------
# 2. Occlusion
# ---------------------------------------------------------------------------------------------

OCCLUSION_HINT = ("for each position (i, j) of the patch — top-left corner (i*stride, j*stride), "
                  "i in range((H - patch) // stride + 1) — set that square of a *copy* of x to `fill` in "
                  "every channel, and record p_y(x) - p_y(occluded), p_y the softmax probability of y.")


def _occlusion_params(g: np.random.Generator | None, H: int, W: int) -> tuple[int, int, float]:
    if g is None:
        return 4, 2, 0.0
    patch = int(g.integers(2, min(H, W) // 2 + 1))
    return patch, int(g.integers(1, patch + 1)), float(g.choice([0.0, 0.5]))


def _check_occlusion_case(occlusion_map: Callable, case: Case, patch: int, stride: int, fill: float) -> None:
    label = case.label("occlusion_map", f"patch={patch}", f"stride={stride}", f"fill={fill}")
    net = case.net()
    expected = reference_occlusion(net, case.x, case.y, patch, stride, fill)
    model = case.model_for(occlusion_map)
    extra = {} if fill == 0.0 else {"fill": fill}  # fill=0.0 is the function's default: rely on it
    got, held = _call_on_held(occlusion_map, case, (model,), (patch, stride), label, **extra)
    H, W = case.x.shape[2:]
    slips = [("the raw class score instead of its softmax probability",
              lambda: reference_occlusion(net, case.x, case.y, patch, stride, fill, scores=True)),
             ("occluded minus original (the sign flipped)",
              lambda: -reference_occlusion(net, case.x, case.y, patch, stride, fill)),
             ("a fill of 0 whatever `fill` says", lambda: reference_occlusion(net, case.x, case.y, patch, stride, 0.0)),
             ("a stride of 1 whatever `stride` says", lambda: reference_occlusion(net, case.x, case.y, patch, 1, fill)),
             ("rows and columns swapped",
              lambda: reference_occlusion(net, case.x, case.y, patch, stride, fill).transpose(1, 2))]
    arr = _array(got, label, "an occlusion map")
    ho, wo = occlusion_positions((H, W), patch, stride)
    if arr.shape != tuple(expected.shape):
        extra = ""
        if arr.ndim == 3 and arr.shape[0] == expected.shape[0]:
            if arr.shape[1:] == (ho - 1, wo - 1):
                extra = (f" One position short in each direction: the last patch starts at row {(ho - 1) * stride}, "
                         f"and {(ho - 1) * stride} + {patch} = {(ho - 1) * stride + patch} <= {H}, so it fits: "
                         "range((H - patch) // stride + 1), not range(0, H - patch, stride).")
            elif arr.shape[1:] == (wo, ho) and ho != wo:
                extra = " Rows and columns are swapped: axis 1 runs over the rows (H), axis 2 over the columns (W)."
        raise CheckFailure(f"{label}: expected shape {dims(expected.shape)} (N, (H - patch) // stride + 1, "
                           f"(W - patch) // stride + 1), got {dims(arr.shape)}.{extra}\n  Hint: {OCCLUSION_HINT}")
    _compare(arr, expected, label, "an occlusion map", OCCLUSION_HINT, slips, model)
    _left_alone(model, held, case, net, label)


@single_threaded
def check_occlusion_map(occlusion_map: Callable, seed: int | None = None, n: int = 4) -> None:
    """occlusion_map(model, x, y, patch, stride, fill=0.0) -> (N, H_out, W_out) drops in p_y."""
    g = None if seed is None else rng(seed + 7)
    for k, case in enumerate(_cases(_visible(), seed, n)):
        with a_case():
            H, W = case.x.shape[2:]
            patch, stride, fill = _occlusion_params(g, H, W) if g is not None else ((4, 2, 0.0) if k == 0 else (7, 3, 0.5))
            _check_occlusion_case(occlusion_map, case, patch, stride, fill)


# ---------------------------------------------------------------------------------------------
# 3. Grad-CAM
# ---------------------------------------------------------------------------------------------

GRAD_CAM_HINT = ("capture the layer's output A (N, K, h, w) with a forward hook, take the gradient of the "
                 "picked class scores with respect to it (torch.autograd.grad, or A.retain_grad()), "
                 "alpha = its mean over (h, w) per channel, and return relu((alpha * A).sum(dim=1)) at "
                 "the layer's own resolution.")


def _check_grad_cam_case(grad_cam: Callable, case: Case, layer: str) -> None:
    label = case.label("grad_cam", f"layer=model.{layer}")
    net = case.net()
    expected = reference_grad_cam(net, layer, case.x, case.y)
    model = case.model_for(grad_cam)
    module = student.make(student.side_of(grad_cam), "submodule", model, layer)
    got, held = _call_on_held(grad_cam, case, (model, module), (), label)
    slips = [("the weighted sum without the ReLU", lambda: reference_grad_cam(net, layer, case.x, case.y, relu=False)),
             ("weights summed over the map instead of averaged",
              lambda: reference_grad_cam(net, layer, case.x, case.y, weights="sum")),
             ("the gradient itself as the weight (element by element) instead of its channel mean",
              lambda: reference_grad_cam(net, layer, case.x, case.y, weights="pixel")),
             ("the gradient of the loss instead of the class score",
              lambda: reference_grad_cam(net, layer, case.x, case.y, target="loss")),
             ("a ReLU on the layer's output A before the weighted sum (Grad-CAM's ReLU acts on the sum "
              "only: use A as the layer returns it)",
              lambda: reference_grad_cam(net, layer, case.x, case.y, relu_a=True)),
             (NORMALISED, lambda: _normalised(expected)), (NORMALISED, lambda: _normalised(expected, lowest=True))]
    arr = _array(got, label, "a class activation map")
    if arr.shape != tuple(expected.shape):
        extra = ""
        if arr.ndim == 3 and arr.shape[1:] == tuple(case.x.shape[2:]) and arr.shape[1:] != tuple(expected.shape[1:]):
            extra = " That is the input's size: return the map at the layer's resolution, without upsampling."
        elif arr.ndim == 3 and arr.shape[0] == expected.shape[0]:
            extra = (" Is A the layer's *output*? A forward hook gets (module, inputs, output); a pre-hook "
                     "sees the input.")
        raise CheckFailure(f"{label}: expected shape {dims(expected.shape)} (N and the layer output's h, w), "
                           f"got {dims(arr.shape)}.{extra}\n  Hint: {GRAD_CAM_HINT}")
    _compare(arr, expected, label, "a class activation map", GRAD_CAM_HINT, slips, model)
    _left_alone(model, held, case, net, label)


@single_threaded
def check_grad_cam(grad_cam: Callable, seed: int | None = None, n: int = 4) -> None:
    """grad_cam(model, layer, x, y) -> (N, h, w) = relu(sum_k alpha_k A_k) at the layer's resolution."""
    if seed is None:
        cases = _visible()
        pairs = [(cases[0], "relu2"), (cases[0], "conv1"), (cases[1], "relu2")]
    else:
        g = rng(seed + 3)
        pairs = [(case, str(g.choice(LAYERS))) for case in _cases([], seed, n)]
    for case, layer in pairs:
        with a_case():
            _check_grad_cam_case(grad_cam, case, layer)


# ---------------------------------------------------------------------------------------------
# 4. Class visualisation
# ---------------------------------------------------------------------------------------------

def _vis_label(y: int, **kwargs: Any) -> str:
    return "class_visualisation(model: the trained digit network, " + ", ".join(
        [f"y={y}"] + [f"{k}={v!r}" for k, v in kwargs.items()]) + ")"


def _visualise(class_visualisation: Callable, y: int, **kwargs: Any) -> np.ndarray:
    """class_visualisation(model, y, **kwargs) on the trained digit network, handed over in training
    mode; the image, checked for shape and range, and the model checked unchanged afterwards."""
    spec, weights = trained()
    label = _vis_label(y, **kwargs)
    model = student.make(student.side_of(class_visualisation), "make_model", spec, weights, "float32", True)
    got = _run(class_visualisation, model, y, label=label, **kwargs)
    _model_unchanged(model, spec, weights, label)
    arr = _array(got, label, "an image of shape (1, 28, 28)")
    if arr.shape != (1, 28, 28):
        raise CheckFailure(f"{label}: expected one image of shape (1, 28, 28) (C, H, W), got {dims(arr.shape)}.\n"
                           "  Hint: optimise a batch of one, x of shape (1, *shape), and return x[0].")
    if not np.isfinite(arr).all() or arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise CheckFailure(f"{label}: pixel values must stay in [0, 1] (the digits' range); got values from "
                           f"{np.nanmin(arr):.3g} to {np.nanmax(arr):.3g}.\n  Hint: clamp x to [0, 1] after "
                           "every step (x.clamp_(0, 1) under torch.no_grad()).")
    return arr


def _model_unchanged(model: Any, spec: dict, weights: dict[str, torch.Tensor], label: str) -> None:
    """The caller's model after the call holds the judge's weights and BatchNorm statistics exactly: a
    forward pass in training mode (no model.eval()) moves the running statistics, an optimizer the
    weights. Decided by the consequence: the model, run in eval mode on a batch of the judge's, must
    give the scores of the judge's own network holding what it loaded; the state_dict (data compared
    with the judge's copy) only names what changed."""
    batch = torch.rand((4, 1, 28, 28), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = reference_net(spec, weights)(_dev(batch)).cpu()
    try:
        got = student.op("forward", model, batch, train=False, dtype="float32")
        same = _matches(_array(got, label, "the model's scores"), expected)
    except CheckFailure:
        same = False
    except Exception as exc:  # noqa: BLE001 - the model's own crash, after the student's call
        raise CheckFailure(f"{label} left the model broken: afterwards, model(x) in eval mode raised "
                           f"{getattr(exc, 'type_name', type(exc).__name__)}: {exc}.") from None
    if not same:
        raise CheckFailure(f"{label} changed the caller's model: afterwards, in eval mode, it no longer gives the "
                           "scores of the weights and BatchNorm statistics it came with.\n  Hint: call model.eval() "
                           "first (in training mode every forward pass updates BatchNorm's running statistics) and "
                           "optimise the input only: the weights stay fixed.")
    state = guarded(f"{label}: the model's state_dict afterwards", lambda: student.op("state_dict", model))
    for key, before in weights.items():
        after = state.get(key) if isinstance(state, dict) else None
        if isinstance(after, torch.Tensor) and after.shape == before.shape and torch.equal(after.cpu(), before):
            continue
        why = ("in training mode every forward pass updates BatchNorm's running statistics (and dropout is on): "
               "call model.eval() first" if "running_" in key or "num_batches" in key else
               "optimise the input only: the weights stay fixed")
        raise CheckFailure(f"{label} changed the caller's model: {key} is not what it was.\n  Hint: {why}; "
                           "after the call the caller's model must be as it was.")


def _probabilities(image: np.ndarray) -> torch.Tensor:
    spec, weights = trained()
    with torch.no_grad():
        return F.softmax(reference_net(spec, weights)(_dev(torch.from_numpy(image)[None])), 1)[0].cpu()


DEFAULT_SEED = 0  # the release's signature: class_visualisation(..., seed=0)


def _same_as_default_seed(class_visualisation: Callable, y: int, image: np.ndarray) -> None:
    """The image of a call with the default seed equals a call with seed=DEFAULT_SEED: the default is
    the release's, and the result depends only on the arguments (no global random generator)."""
    again = _visualise(class_visualisation, y, seed=DEFAULT_SEED)
    if not np.allclose(image, again, rtol=0, atol=1e-6):
        worst = float(np.abs(image - again).max())
        raise CheckFailure(
            f"{_vis_label(y)} and {_vis_label(y, seed=DEFAULT_SEED)} returned different images (pixels differ by "
            f"up to {worst:.3g}).\n  Hint: keep the release's default seed={DEFAULT_SEED}, and draw the start "
            "and the jitter from torch.Generator().manual_seed(seed) only, never from the global generator, so "
            "that the same arguments give the same image.")


@single_threaded
def check_class_visualisation(class_visualisation: Callable, seed: int | None = None, n: int = 2) -> None:
    """class_visualisation(model, y, ...) -> (1, 28, 28) in [0, 1] that the trained network gives
    class y with probability >= VIS_PROBABILITY; a larger l2 gives a smaller image; the caller's model
    keeps its weights and BatchNorm statistics; the default seed gives what seed=DEFAULT_SEED gives."""
    classes = [3, 0] if seed is None else [int(c) for c in rng(seed).choice(10, size=n, replace=False)]
    for k, y in enumerate(classes):
        # the first visible case uses the release's default seed, the others their own
        with a_case():
            kwargs = {} if seed is None and k == 0 else {"seed": 0 if seed is None else int(rng(seed + y).integers(1000))}
            image = _visualise(class_visualisation, y, **kwargs)
            p = _probabilities(image)
            top = int(p.argmax())
            if top != y or p[y] < VIS_PROBABILITY:
                if p[top] > 0.5:
                    how = (f"the network is sure it sees a {top}: is the score you climb scores[0, y], the one "
                           "of the class asked for?")
                elif p[y] < 0.05:
                    how = "the step's sign: x = x + lr * grad climbs the score, x - lr * grad descends it."
                else:
                    how = ("that you climb the raw score scores[0, y], not the softmax probability (nor the loss): "
                           "while p_y is small, the probability's gradient is p_y times the score's and the ascent "
                           "barely moves. If you climb the score, take more steps or a larger learning rate (your "
                           "defaults are what the check uses).")
                raise CheckFailure(
                    f"{_vis_label(y, **kwargs)}: the trained network gives your image class {y} with probability "
                    f"{p[y]:.3f} (its top class is {top}, probability {p[top]:.3f}); expected class {y} with at "
                    f"least {VIS_PROBABILITY}.\n  Hint: ascend s_y - l2 * ||x||^2 and clamp to [0, 1]; check {how}")
            if not kwargs:
                _same_as_default_seed(class_visualisation, y, image)
    y = classes[0]
    free = _visualise(class_visualisation, y, l2=0.0, seed=1)
    tight = _visualise(class_visualisation, y, l2=0.1, seed=1)
    n_free, n_tight = float(np.linalg.norm(free)), float(np.linalg.norm(tight))
    if not n_tight < 0.9 * n_free:
        raise CheckFailure(
            f"{_vis_label(y, l2=0.1, seed=1)}: the image's L2 norm is {n_tight:.2f}, with l2=0.0 it is "
            f"{n_free:.2f}; the penalty l2 * ||x||^2 must shrink the image.\n  Hint: the objective is "
            "s_y - l2 * (x * x).sum(): its gradient pulls every pixel towards 0, harder for larger l2.")


# ---------------------------------------------------------------------------------------------
# 5. FGSM
# ---------------------------------------------------------------------------------------------

FGSM_HINT = ("x_adv = clamp(x + eps * sign(d loss / d x), 0, 1), the loss being F.cross_entropy(model(x), y) "
             "with the model in eval mode; return it detached.")


def _check_fgsm_case(fgsm: Callable, case: Case, eps: float) -> None:
    label = case.label("fgsm", f"eps={eps}")
    net = case.net()
    expected, grad = reference_fgsm(net, case.x, case.y, eps)
    model = case.model_for(fgsm)
    got, held = _call_on_held(fgsm, case, (model,), (eps,), label)
    arr = _array(got, label, f"an adversarial batch of shape {dims(expected.shape)}")
    if arr.shape != tuple(expected.shape):
        raise CheckFailure(f"{label}: expected shape {dims(expected.shape)} (the shape of x), got {dims(arr.shape)}.\n"
                           f"  Hint: {FGSM_HINT}")
    e = expected.numpy()
    off = np.abs(arr - e) > 1e-5
    # a sign may differ where the gradient is zero to rounding: there either answer is right
    tiny = (grad.abs() <= 1e-4 * max(float(grad.abs().max()), 1e-30)).numpy()
    if (off & ~tiny).any():
        x0 = case.x.to(F64).numpy()
        xd = x0 + eps * grad.sign().numpy()
        slips = [("a step *down* the loss (x - eps * sign), which makes the model surer",
                  lambda: torch.from_numpy(np.clip(x0 - eps * grad.sign().numpy(), 0, 1))),
                 ("x + eps * sign without the clamp to [0, 1]", lambda: torch.from_numpy(xd)),
                 ("the gradient itself instead of its sign",
                  lambda: torch.from_numpy(np.clip(x0 + eps * grad.numpy(), 0, 1)))]
        assert_close(np.where(tiny, e, arr), e, name=label, rtol=0, atol=1e-5,
                     hint=_diagnosed(arr, slips, model, FGSM_HINT))
    _left_alone(model, held, case, net, label)


def _check_fgsm_property(fgsm: Callable, seed: int, n: int = 120) -> None:
    case = _random_digits(rng(seed), n)
    label = case.label("fgsm", f"eps={EPS_FLIP}")
    net = case.net()
    with torch.no_grad():
        right = net(_dev(case.x)).argmax(1).cpu() == case.y
    got = _array(_run(fgsm, case.model_for(fgsm), case.x.clone(), case.y.clone(), EPS_FLIP, label=label),
                 label, "an adversarial batch")
    if got.shape != tuple(case.x.shape):
        raise CheckFailure(f"{label}: expected shape {dims(case.x.shape)}, got {dims(got.shape)}.")
    with torch.no_grad():
        still = net(_dev(torch.from_numpy(got))).argmax(1).cpu() == case.y
    flipped = float((right & ~still).sum()) / max(int(right.sum()), 1)
    if flipped < FLIP_SHARE:
        raise CheckFailure(f"{label}: your adversarial digits fool the network on {flipped:.0%} of the "
                           f"{int(right.sum())} it classified correctly; a step of eps={EPS_FLIP} along the "
                           f"loss gradient's sign fools it on at least {FLIP_SHARE:.0%}.\n  Hint: {FGSM_HINT}")


@single_threaded
def check_fgsm(fgsm: Callable, seed: int | None = None, n: int = 4) -> None:
    """fgsm(model, x, y, eps) -> clamp(x + eps * sign(d CE / d x), 0, 1); it must fool the trained network."""
    g = None if seed is None else rng(seed + 5)
    for case in _cases(_visible(), seed, n):
        with a_case():
            eps = 0.1 if g is None else float(g.choice([0.02, 0.05, 0.1, 0.3]))
            _check_fgsm_case(fgsm, case, eps)
    _check_fgsm_property(fgsm, 0 if seed is None else seed + 1, n=60 if seed is None else 120)


# ---------------------------------------------------------------------------------------------
# 6. Integrated gradients
# ---------------------------------------------------------------------------------------------

IG_STEPS = 32  # the release's default: integrated_gradients(..., steps=32)
IG_COMPLETE = 0.02  # completeness at 256 steps: |sum - (s_y(x) - s_y(x'))| <= this share of max(1, |s_y(x) - s_y(x')|)

IG_HINT = ("IG = (x - x') * (1/m) sum_{k=1..m} d s_y / d x at x' + ((k - 1/2) / m) (x - x'): the midpoint rule, "
           "m = steps points, s_y the raw score (the logit) of each example's own class y, the model in eval "
           "mode; baseline None means zeros; the result has x's shape.")


def _path_alphas(steps: int, points: str = "midpoint") -> torch.Tensor:
    k = torch.arange(steps, dtype=F64)
    return {"midpoint": (k + 0.5) / steps, "left": k / steps, "right": (k + 1) / steps,
            "both ends": torch.linspace(0, 1, steps, dtype=F64)}[points]


def reference_integrated_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, baseline: torch.Tensor | None = None,
                                   steps: int = IG_STEPS, *, points: str = "midpoint", target: str = "score",
                                   times_input: bool = True, absolute: bool = False) -> torch.Tensor:
    """Integrated gradients (Sundararajan et al. 2017), midpoint rule, float64; the keywords give the slips."""
    xd = _dev(x)
    base = torch.zeros_like(xd) if baseline is None else _dev(baseline)
    yd = y.to(xd.device)
    total = torch.zeros_like(xd)
    for a in _path_alphas(steps, points).tolist():
        p = (base + a * (xd - base)).requires_grad_(True)
        scores = net(p)
        if target == "score":
            out = _picked(scores, y)
        elif target == "probability":
            out = _picked(F.softmax(scores, 1), y)
        else:  # the loss, a mean over the batch as F.cross_entropy gives it
            out = F.cross_entropy(scores, yd)
        (grad,) = torch.autograd.grad(out, p)
        total += grad
    ig = total / steps
    ig = ig * (xd - base) if times_input else ig
    return (ig.abs() if absolute else ig).detach().cpu()


def _ig_label(case: Case, baseline: torch.Tensor | None, steps: int | None) -> str:
    extra = [] if baseline is None else [f"baseline {dims(baseline.shape)} of {float(baseline.flatten()[0]):g}s"
                                         if bool((baseline == baseline.flatten()[0]).all()) else
                                         f"baseline {dims(baseline.shape)}, random"]
    return case.label("integrated_gradients", *extra, *([] if steps is None else [f"steps={steps}"]))


def _check_ig_case(integrated_gradients: Callable, case: Case, baseline: torch.Tensor | None, steps: int | None) -> None:
    label = _ig_label(case, baseline, steps)
    net = case.net()
    m = IG_STEPS if steps is None else steps
    ref = lambda **kw: reference_integrated_gradients(net, case.x, case.y, baseline, m, **kw)  # noqa: E731
    expected = ref()
    model = case.model_for(integrated_gradients)
    kwargs = ({} if baseline is None else {"baseline": baseline.clone()}) | ({} if steps is None else {"steps": steps})
    got, held = _call_on_held(integrated_gradients, case, (model,), (), label, **kwargs)
    slips = [("the path's gradients averaged without the factor (x - baseline)", lambda: ref(times_input=False)),
             ("the gradient of the softmax probability instead of the raw score (the logit)",
              lambda: ref(target="probability")),
             ("the gradient of the loss instead of the class score", lambda: ref(target="loss")),
             ("points k/m for k = 0..m-1 (the left Riemann sum: the path's end x is never visited); the midpoint "
              "rule takes (k + 1/2)/m", lambda: ref(points="left")),
             ("points k/m for k = 1..m (the right Riemann sum); the midpoint rule takes (k + 1/2)/m",
              lambda: ref(points="right")),
             ("m points from 0 to 1 with both ends included (torch.linspace(0, 1, m)); the midpoint rule takes "
              "(k + 1/2)/m, k = 0..m-1", lambda: ref(points="both ends")),
             ("the absolute value of the attributions (they are signed: a pixel can speak against the class)",
              lambda: ref(absolute=True)),
             ("a zero baseline whatever `baseline` says",
              lambda: reference_integrated_gradients(net, case.x, case.y, None, m)),
             (f"steps={IG_STEPS} whatever `steps` says",
              lambda: reference_integrated_gradients(net, case.x, case.y, baseline, IG_STEPS))]
    arr = _array(got, label, f"attributions of shape {dims(expected.shape)}")
    if arr.shape != tuple(expected.shape):
        raise CheckFailure(f"{label}: expected attributions of shape {dims(expected.shape)} (the shape of x: one per "
                           f"pixel and channel), got {dims(arr.shape)}.\n  Hint: {IG_HINT}", "shape")
    _compare(arr, expected, label, "attributions", IG_HINT, slips, model)
    _left_alone(model, held, case, net, label)


def _linear_spec(C: int, H: int, W: int, K: int) -> dict:
    L = specnet.layer
    return {"seq": [["flatten", L("Flatten")], ["fc", L("Linear", C * H * W, K)]]}


def _check_ig_linear(integrated_gradients: Callable, g: np.random.Generator) -> None:
    """On a linear model s(x) = W x + b, IG with a zero baseline is exactly gradient times input."""
    C, H, W, K = 2, 5, 6, 4
    spec = _linear_spec(C, H, W, K)
    case = Case(spec, _weights(spec, int(g.integers(2**31))), torch.from_numpy(g.random((3, C, H, W)).astype(np.float32)),
                torch.from_numpy(g.integers(0, K, size=3).astype(np.int64)), "a linear model, 2×5×6 → 4 classes")
    label = case.label("integrated_gradients", "steps=5")
    w = case.weights["fc.weight"].to(F64)[case.y].view(case.x.shape)
    expected = (w * case.x.to(F64))
    got = _array(_run(integrated_gradients, case.model_for(integrated_gradients), case.x.clone(), case.y.clone(), steps=5,
                      label=label), label, "attributions")
    if got.shape != tuple(case.x.shape):
        raise CheckFailure(f"{label}: expected shape {dims(case.x.shape)}, got {dims(got.shape)}.", "shape")
    assert_close(got, expected.numpy(), name=label, rtol=RTOL, atol=ATOL * max(1.0, float(expected.abs().max())),
                 hint="a linear model's gradient is its weight row W[y] at every point of the path, so IG with a zero "
                      "baseline is exactly W[y] * x, gradient times input, for any number of steps. " + IG_HINT)


def _check_ig_properties(integrated_gradients: Callable, seed: int) -> None:
    """Completeness on the trained network (the sum of the attributions is s_y(x) - s_y(baseline), up to
    the rule's error, small at 256 steps) and a batch answered as its examples one by one."""
    g = rng(seed)
    case = _random_digits(g, 3)
    net = case.net()
    baseline = torch.full_like(case.x, float(g.choice([0.0, 0.5])))
    label = _ig_label(case, baseline, 256)
    got = _array(_run(integrated_gradients, case.model_for(integrated_gradients), case.x.clone(), case.y.clone(),
                      baseline=baseline.clone(), steps=256, label=label), label, "attributions")
    if got.shape != tuple(case.x.shape):
        raise CheckFailure(f"{label}: expected shape {dims(case.x.shape)}, got {dims(got.shape)}.", "shape")
    scores = _class_values(net, case.x, case.y, probability=False) - _class_values(net, baseline, case.y, probability=False)
    sums = got.reshape(len(got), -1).sum(1)
    for n in range(len(got)):
        delta = float(scores[n])
        if not abs(sums[n] - delta) <= IG_COMPLETE * max(1.0, abs(delta)):
            raise CheckFailure(
                f"{label}: completeness fails for example {n}: your attributions sum to {sums[n]:.4g}, but "
                f"s_y(x) - s_y(baseline) = {delta:.4g} (the raw class scores, the logits); with 256 steps they must "
                f"agree within {IG_COMPLETE:.0%}.\n  Hint: the attributions must add up to the score's change along "
                f"the path: {IG_HINT}", "values")
    steps = 16  # the batch against its examples one by one: a few points suffice
    label = _ig_label(case, baseline, steps)
    got = _array(_run(integrated_gradients, case.model_for(integrated_gradients), case.x.clone(), case.y.clone(),
                      baseline=baseline.clone(), steps=steps, label=label), label, "attributions")
    for n in range(len(got)):
        one = Case(case.spec, case.weights, case.x[n:n + 1].clone(), case.y[n:n + 1].clone(), case.what)
        one_label = _ig_label(one, baseline[n:n + 1], steps)
        single = _array(_run(integrated_gradients, one.model_for(integrated_gradients), one.x.clone(), one.y.clone(),
                             baseline=baseline[n:n + 1].clone(), steps=steps, label=one_label), one_label, "attributions")
        for what, arr, shape in ((label, got, case.x.shape), (one_label, single, one.x.shape)):
            if arr.shape != tuple(shape):
                raise CheckFailure(f"{what}: expected shape {dims(shape)}, got {dims(arr.shape)}.", "shape")
        # float32 gradients summed, by other convolution algorithms for other batch sizes: 1 % of the largest
        worst = float(np.abs(single[0] - got[n]).max())
        if not worst <= 1e-2 * max(1.0, float(np.abs(got[n]).max())):
            raise CheckFailure(
                f"{label}: example {n} of the batch gets other attributions than the same example alone "
                f"(they differ by up to {worst:.3g}).\n"
                "  Hint: each example's path runs from its own baseline to itself, and its gradient is of its own "
                "score only: keep the batch axis and the path axis apart (if you stack the m path points into one "
                "batch, reshape it back as (m, N, ...) in the order you stacked it).", "values")


@single_threaded
def check_integrated_gradients(integrated_gradients: Callable, seed: int | None = None, n: int = 2) -> None:
    """integrated_gradients(model, x, y, baseline=None, steps=IG_STEPS) -> x's shape: the midpoint rule's
    path integral of d s_y / d x times (x - baseline); completeness, batch = one by one, and
    gradient × input on a linear model."""
    g = rng(606 if seed is None else seed + 11)
    cases = _cases(_visible(), seed, n)
    for k, case in enumerate(cases):
        with a_case():
            if seed is None:  # the first with every default, the second with its own baseline and steps
                baseline, steps = (None, None) if k == 0 else (torch.full_like(case.x, 0.25), 8)
            else:
                kind = int(g.integers(3))
                baseline = (None if kind == 0 else torch.full_like(case.x, float(g.choice([0.25, 0.5]))) if kind == 1
                            else torch.from_numpy(g.random(tuple(case.x.shape)).astype(np.float32)))
                steps = None if k == 0 else int(g.choice([4, 8, 16]))
            _check_ig_case(integrated_gradients, case, baseline, steps)
    with a_case():
        _check_ig_linear(integrated_gradients, g)
    with a_case():
        _check_ig_properties(integrated_gradients, 0 if seed is None else seed + 12)


# ---------------------------------------------------------------------------------------------
# 7. Projected gradient descent (PGD)
# ---------------------------------------------------------------------------------------------

PGD_HINT = ("start at x; each of `steps` times: the gradient of F.cross_entropy(model(x_adv), y) (eval mode), "
            "x_adv = x_adv + alpha * sign(gradient), then project onto the ball around the *original* x — "
            "torch.min(torch.max(x_adv, x - eps), x + eps) — and clamp to [0, 1]; return x_adv detached.")
PGD_STRONGER = dict(eps=0.1, alpha=0.025, steps=10, n=60)  # the property: PGD fools at least as many digits as FGSM


def _pgd_step(net: nn.Module, x0: torch.Tensor, xa: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, *,
              variant: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """One step of PGD from ``xa`` (float64), the ball around ``x0``: (the next iterate, the pixels whose
    gradient is zero to rounding, where float32 may take another sign); ``variant`` gives the slips."""
    param = next(net.parameters())
    x0 = x0.to(device=param.device, dtype=param.dtype)
    xa = xa.to(device=param.device, dtype=param.dtype).detach().clone().requires_grad_(True)
    scores = net(xa)
    out = _picked(scores, y) if variant == "score" else F.cross_entropy(scores, y.to(xa.device), reduction="sum")
    (grad,) = torch.autograd.grad(out, xa)
    tiny = grad.abs() <= 1e-4 * max(float(grad.abs().max()), 1e-30)
    step = grad if variant == "raw gradient" else -grad.sign() if variant == "descent" else grad.sign()
    out = torch.min(torch.max(xa.detach() + alpha * step, x0 - eps), x0 + eps).clamp(0, 1)
    return out.detach().cpu(), tiny.cpu()


def _check_pgd_case(pgd: Callable, case: Case, eps: float, alpha: float, steps: int) -> None:
    """Step by step: pgd(..., steps=t) for t = 1 .. steps (no random start: each is the next one's first t
    steps) must be one reference step, in float64, from the answer for t - 1 — so float32's rounding never
    sends the comparison down another path — and within the ball and [0, 1]."""
    label = case.label("pgd", f"eps={eps}", f"alpha={alpha}", f"steps={steps}")
    net = case.net()
    net32 = specnet.build(case.spec)
    net32.load_state_dict(case.weights)
    net32 = net32.float().eval()
    model = case.model_for(pgd)
    held = student.make(student.side_of(pgd), "hold", case.x.clone())
    x0 = case.x.to(F64)
    previous = x0
    for t in range(1, steps + 1):
        at = case.label("pgd", f"eps={eps}", f"alpha={alpha}", f"steps={t}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = guarded(at, lambda: student.op("call_with", pgd, model, held, case.y.clone(), eps, alpha, t))
        arr = _array(got, at, f"an adversarial batch of shape {dims(case.x.shape)}")
        if arr.shape != tuple(case.x.shape):
            raise CheckFailure(f"{at}: expected shape {dims(case.x.shape)} (the shape of x), got {dims(arr.shape)}.\n"
                               f"  Hint: {PGD_HINT}", "shape")
        if not np.isfinite(arr).all() or arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
            raise CheckFailure(f"{at}: pixels must stay in [0, 1]; yours go from {np.nanmin(arr):.4g} to "
                               f"{np.nanmax(arr):.4g}.\n  Hint: project and clamp to [0, 1] after every step (after the step, not "
                               f"before it). {PGD_HINT}", "values")
        moved = np.abs(arr - x0.numpy())
        if moved.max() > eps + 1e-5:
            where = tuple(int(i) for i in np.unravel_index(int(moved.argmax()), arr.shape))
            raise CheckFailure(f"{at}: every pixel must stay within eps={eps} of x (the L∞ ball), but pixel {where} "
                               f"moved by {moved.max():.4g}.\n  Hint: project after each step (not before it), onto "
                               "the ball around the original x, not the current iterate: clamp x_adv to "
                               f"[x - eps, x + eps], then to [0, 1]. {PGD_HINT}", "values")
        expected, tiny = _pgd_step(net, x0, previous, case.y, eps, alpha)
        e, tiny = expected.numpy(), tiny.numpy()
        # in float32 a max pool may pick another of two inputs equal in float64 (two pixels moved alike):
        # the step float32 takes, from the same point, is right too
        as32, tiny32 = _pgd_step(net32, x0, previous, case.y, eps, alpha)
        tiny |= (np.abs(arr - as32.double().numpy()) <= 1e-5) | tiny32.numpy()
        if ((np.abs(arr - e) > 1e-5) & ~tiny).any():
            slips = [("a step *down* the loss (x_adv - alpha * sign), which makes the model surer",
                      lambda: _pgd_step(net, x0, previous, case.y, eps, alpha, variant="descent")[0]),
                     ("a step along the gradient itself instead of its sign",
                      lambda: _pgd_step(net, x0, previous, case.y, eps, alpha, variant="raw gradient")[0]),
                     ("a step up the class score s_y (which makes the model surer) instead of up the loss",
                      lambda: _pgd_step(net, x0, previous, case.y, eps, alpha, variant="score")[0])]
            hint = _diagnosed(arr, slips, model, PGD_HINT)
            if t > 1 and hint == PGD_HINT:
                hint = (f"with steps={t - 1} you returned x_adv; one more step from there, as the formula takes it, "
                        f"is not what steps={t} returned. Clamp to [0, 1] after every step, not only at the end (the "
                        f"gradient must be taken at an image), and take each step from the last iterate. {PGD_HINT}")
            assert_close(np.where(tiny, e, arr), e, name=at, rtol=0, atol=1e-5, hint=hint)
        previous = torch.from_numpy(arr)
    _left_alone(model, held, case, net, label)


def _fooled(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(_dev(x)).argmax(1).cpu() != y


def _check_pgd_stronger(pgd: Callable, seed: int) -> None:
    """On the trained network, PGD with the FGSM's eps fools at least as many held-out digits as FGSM."""
    p = PGD_STRONGER
    case = _random_digits(rng(seed), p["n"])
    label = case.label("pgd", f"eps={p['eps']}", f"alpha={p['alpha']}", f"steps={p['steps']}")
    net = case.net()
    got = _array(_run(pgd, case.model_for(pgd), case.x.clone(), case.y.clone(), p["eps"], p["alpha"], p["steps"],
                      label=label), label, "an adversarial batch")
    if got.shape != tuple(case.x.shape):
        raise CheckFailure(f"{label}: expected shape {dims(case.x.shape)}, got {dims(got.shape)}.", "shape")
    if not np.isfinite(got).all() or np.abs(got - case.x.numpy()).max() > p["eps"] + 1e-5 or got.min() < -1e-6 \
            or got.max() > 1 + 1e-6:
        raise CheckFailure(f"{label}: pixels must stay within eps={p['eps']} of x and in [0, 1].\n  Hint: {PGD_HINT}",
                           "values")
    by_fgsm = int(_fooled(net, reference_fgsm(net, case.x, case.y, p["eps"])[0], case.y).sum())
    by_pgd = int(_fooled(net, torch.from_numpy(got), case.y).sum())
    if by_pgd < by_fgsm:
        raise CheckFailure(f"{label}: your attack fools the trained network on {by_pgd} of {p['n']} held-out digits; "
                           f"one FGSM step of the same eps fools it on {by_fgsm}. {p['steps']} projected steps must do "
                           f"at least as well.\n  Hint: {PGD_HINT}", "values")


@single_threaded
def check_pgd(pgd: Callable, seed: int | None = None, n: int = 2) -> None:
    """pgd(model, x, y, eps, alpha, steps) -> `steps` projected sign-gradient ascent steps on the cross-entropy,
    within eps of x (L∞) and in [0, 1]; at least as strong as FGSM on the trained network."""
    g = None if seed is None else rng(seed + 13)
    for k, case in enumerate(_cases(_visible(), seed, n)):
        with a_case():
            if g is None:
                eps, alpha, steps = (0.1, 0.04, 4) if k == 0 else (0.15, 0.05, 5)
            else:
                eps = float(g.choice([0.05, 0.1, 0.2]))
                alpha, steps = eps * float(g.choice([0.25, 0.4])), int(g.integers(3, 7))
            _check_pgd_case(pgd, case, eps, alpha, steps)
    with a_case():
        _check_pgd_stronger(pgd, 0 if seed is None else seed + 14)


# ---------------------------------------------------------------------------------------------
# 8. The model-randomisation sanity check (Adebayo et al. 2018)
# ---------------------------------------------------------------------------------------------

RANDOM_STD = 0.1  # re-initialised parameters: 0.1 * torch.randn(p.shape, generator=generator)
RANDOMISABLE = ("fc", "conv2", "bn1", "conv1")  # top (the logits) down: the layers with parameters
RANDOMISATION_HINT = (
    "work on net = copy.deepcopy(model) in eval mode; maps0 = explain(net, x, y); then for each name in `layers`, "
    "in the order given (from the top down, cascading: each layer stays randomised for the next), replace every "
    "parameter p of net.get_submodule(name) (module.parameters(): weight, then bias) under torch.no_grad() with "
    f"{RANDOM_STD} * torch.randn(p.shape, generator=generator), and recompute explain(net, x, y); row k of the "
    "result, (len(layers) + 1, N), holds each example's Spearman rank correlation between its map after k layers "
    "and its original map (row 0: the original against itself, 1). Correlate the maps as explain returns them.")


def _spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each row of a with the same row of b (average ranks for ties)."""
    from scipy.stats import rankdata

    ra = torch.from_numpy(rankdata(a.numpy(), axis=1))
    rb = torch.from_numpy(rankdata(b.numpy(), axis=1))
    return _pearson(ra, rb)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)


def reference_randomisation(spec: dict, weights: dict, explainer: str, x: torch.Tensor, y: torch.Tensor,
                            layers: list[str], seed: int, *, cascade: bool = True, correlation: str = "spearman",
                            absolute: bool = False, rerun: bool = True, order: str = "given",
                            float32: bool = False) -> tuple[torch.Tensor, bool]:
    """((len(layers) + 1, N) rank correlations of each example's map with its original as the layers are
    re-initialised in turn, cascading; whether some map had tied values); the keywords give the slips."""
    from ..kernel.ops import EXPLAINERS

    explain = EXPLAINERS[explainer]

    def fresh() -> nn.Module:
        if not float32:
            return reference_net(spec, weights)
        net = specnet.build(spec)  # as the student's kernel computes it: float32, on the CPU
        net.load_state_dict(weights)
        return net.float().eval()

    net = fresh()
    param = next(net.parameters())
    xd, yd = x.to(device=param.device, dtype=param.dtype), y.to(param.device)
    maps0 = explain(net, xd, yd).detach().flatten(1).cpu().to(F64)
    fn = _pearson if correlation == "pearson" else _spearman
    prep = (lambda m: m.abs()) if absolute else (lambda m: m)
    g = torch.Generator().manual_seed(seed)
    rows, tied = [fn(prep(maps0), prep(maps0))], any(len(torch.unique(r)) < len(r) for r in maps0)
    for name in (list(reversed(layers)) if order == "reversed" else layers):
        if not cascade:
            net = fresh()
        with torch.no_grad():
            for p in net.get_submodule(name).parameters():
                p.copy_((RANDOM_STD * torch.randn(p.shape, generator=g)).to(p))
        maps = explain(net if rerun else fresh(), xd, yd).detach().flatten(1).cpu().to(F64)
        tied |= any(len(torch.unique(r)) < len(r) for r in maps)
        rows.append(fn(prep(maps0), prep(maps)))
    return torch.stack(rows), tied


def _check_randomisation_case(randomisation_check: Callable, case: Case, explainer: str, layers: list[str],
                              seed: int) -> np.ndarray:
    label = case.label("randomisation_check", f"explain: the {explainer} map", f"layers={layers}",
                       f"generator seeded {seed}")
    ref_ = lambda **kw: reference_randomisation(case.spec, case.weights, explainer, case.x, case.y, layers,  # noqa: E731
                                                seed, **kw)[0]
    expected, tied = reference_randomisation(case.spec, case.weights, explainer, case.x, case.y, layers, seed)
    side = student.side_of(randomisation_check)
    model = case.model_for(randomisation_check)
    explain = student.make(side, "make_explainer", explainer)
    generator = student.make(side, "make_generator", seed)
    got, held = _call_on_held(randomisation_check, case, (model, explain), (list(layers), generator), label)
    arr = _array(got, label, f"correlations of shape {dims(expected.shape)}")
    if arr.shape != tuple(expected.shape):
        extra = ""
        if arr.shape == (len(layers), len(case.x)):
            extra = " One row short: row 0 is the original map against itself (1 for every example)."
        elif arr.shape == (len(layers) + 1,):
            extra = " One correlation per example and stage, not their mean over the batch."
        raise CheckFailure(f"{label}: expected shape {dims(expected.shape)} (len(layers) + 1 stages, N examples), got "
                           f"{dims(arr.shape)}.{extra}\n  Hint: {RANDOMISATION_HINT}", "shape")
    if not tied:  # tied values (pixels the gradient never reaches are all 0) have ranks by convention only:
        # then the values are not compared (about 1 random case in 100; never the trained network's digits)
        slips = [("Pearson's correlation of the values", "Spearman's is the correlation of their ranks",
                  lambda: ref_(correlation="pearson")),
                 ("each layer randomised alone, the others restored", "cascade: each layer stays randomised for the "
                  "next", lambda: ref_(cascade=False)),
                 ("the absolute values' ranks", "correlate the maps as explain returns them (signed)",
                  lambda: ref_(absolute=True)),
                 ("the layers randomised in the reverse order", "take them in the order given, top first",
                  lambda: ref_(order="reversed")),
                 ("the original model's explanation at every stage", "explain the randomised copy",
                  lambda: ref_(rerun=False))]
        # a correlation near 0 of maps from a random network moves with float32's rounding: the reference in
        # float32, as the kernel computes it, is right too
        if arr.shape == expected.shape and not np.all(np.abs(arr - expected.numpy()) <= 2e-3) and not np.all(
                np.abs(arr - ref_(float32=True).numpy()) <= 2e-3):
            hint = RANDOMISATION_HINT
            for what, instead, variant in slips:
                try:
                    if np.all(np.abs(arr - variant().numpy()) <= 2e-3):
                        hint = f"your answer is what {what} gives: {instead}. {RANDOMISATION_HINT}"
                        break
                except Exception:  # noqa: BLE001 - a variant that does not apply to this case
                    continue
            assert_close(arr, expected.numpy(), name=label, rtol=0, atol=2e-3, hint=hint)
    _randomisation_left_alone(model, held, case, label)
    return arr


def _randomisation_left_alone(model: Any, held: Any, case: Case, label: str) -> None:
    """The caller's model after the call gives the network's scores (eval mode, on the x it was given and on
    another batch): re-initialising its layers in place shows."""
    checks = (("on the x it was given", case.x, held, None), ("on another batch", (1 - case.x).flip(-1), None, None))
    _scores_after(model, case.net(), label, checks, kind="side effect",
                  broken=lambda what, error: f"{label} left the model broken: afterwards, model(x) {what} (eval mode) "
                                            f"raised {error}.",
                  changed=lambda what, _: (
                      f"{label} changed the caller's model (or x): afterwards, model(x) {what}, in eval mode, no longer "
                      "gives the scores of the weights it came with.\n  Hint: randomise a copy — net = "
                      "copy.deepcopy(model) — never the model you were given (nor x): the caller still needs the "
                      "trained network."))


def _check_randomisation_drops(randomisation_check: Callable, seed: int) -> None:
    """On the trained network with saliency maps, row 0 is 1 and the correlation falls once every layer is
    randomised (Adebayo et al.: the gradient passes the model-randomisation test)."""
    case = _random_digits(rng(seed), 4)
    layers = ["fc", "conv2", "conv1"]
    arr = _check_randomisation_case(randomisation_check, case, "saliency", layers, seed % 1000)
    if not np.allclose(arr[0], 1, atol=1e-6):
        raise CheckFailure(f"{case.label('randomisation_check')}: row 0 (no layer randomised) must be 1 for every "
                           f"example (a map against itself); got {np.round(arr[0], 4).tolist()}.", "values")
    if not arr[-1].mean() < 0.5:
        raise CheckFailure(f"{case.label('randomisation_check')}: after randomising every layer the saliency maps "
                           f"still correlate {arr[-1].mean():.3f} with the trained network's on average; they must "
                           f"fall below 0.5.\n  Hint: {RANDOMISATION_HINT}", "values")


def _randomised_layers(g: np.random.Generator) -> list[str]:
    k = int(g.integers(2, len(RANDOMISABLE) + 1))
    return sorted((str(v) for v in g.choice(RANDOMISABLE, size=k, replace=False)), key=RANDOMISABLE.index)


@single_threaded
def check_randomisation_check(randomisation_check: Callable, seed: int | None = None, n: int = 2) -> None:
    """randomisation_check(model, explain, x, y, layers, generator) -> (len(layers) + 1, N) Spearman
    correlations of each example's map with its original as the layers are re-initialised top down,
    cascading, on a copy; the caller's model unchanged."""
    g = None if seed is None else rng(seed + 15)
    for k, case in enumerate(_cases(_visible(), seed, n)):
        with a_case():
            if g is None:
                explainer, layers, s = ("gradient", ["fc", "conv2", "conv1"], 0) if k == 0 else \
                    ("gradient", ["fc", "bn1"], 3)
            else:
                explainer, layers, s = "gradient", _randomised_layers(g), int(g.integers(10**6))
            _check_randomisation_case(randomisation_check, case, explainer, layers, s)
    with a_case():
        _check_randomisation_drops(randomisation_check, 5 if seed is None else seed + 16)
