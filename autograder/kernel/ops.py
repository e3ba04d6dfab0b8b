"""Operations on the student's objects, each answering with plain data.

These run where the student's code lives: inside the grading kernel, asked by the judge through
:mod:`autograder.agent`, or in the notebook's own process when a student runs a test cell
(through :mod:`autograder.student`, which also passes the answers through the protocol so that
both see the same data). The checks never touch a student's object any other way.

Every answer is data the kernel computed, and a student can rewrite this module in their kernel: the
judge only compares answers with values it computed itself (outputs, gradients, weights). Side
effects are tested by their consequences — :func:`forward` runs several passes on one ``x``, and
:func:`hold` keeps an input in the kernel across calls — never by an operation that reports on an
object's own state (docs/ARCHITECTURE.md, "Facts the judge takes from the kernel").

PyTorch is imported inside the functions that need it: NumPy-only kernels import this module too.
"""

from __future__ import annotations

import copy
from typing import Any


def new(factory: Any, *args: Any, meta: bool = False, **kwargs: Any) -> Any:
    """``factory(*args, **kwargs)``; on PyTorch's meta device when ``meta`` (shapes without memory),
    falling back to the CPU for code that cannot run there."""
    if meta:
        import torch

        try:
            with torch.device("meta"):
                return factory(*args, **kwargs)
        except Exception:  # noqa: BLE001 - code that cannot run on meta is built on the CPU below
            pass
    return factory(*args, **kwargs)


def method(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(obj, name)(*args, **kwargs)


def get(obj: Any, name: str, default: Any = None) -> Any:
    return getattr(obj, name, default)


def has(obj: Any, name: str) -> bool:
    return hasattr(obj, name)


def set_item(obj: Any, attr: str, key: Any, value: Any) -> None:
    getattr(obj, attr)[key] = value


def get_item(obj: Any, attr: str, key: Any) -> Any:
    return getattr(obj, attr)[key]


# ---------------------------------------------------------------------------------------------
# PyTorch modules
# ---------------------------------------------------------------------------------------------

def module_info(model: Any) -> dict:
    """What the structural checks compare: whether it is an ``nn.Module``, its state_dict's names,
    shapes and dtypes, its trainable parameter count and its children. Facts the kernel states about
    its own object: a check compares them with the reference's only to explain a failure sooner, and
    the outputs with the judge's weights decide (docs/ARCHITECTURE.md, "Facts the judge takes from
    the kernel")."""
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        return {"is_module": False}
    state = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in model.state_dict().items()}
    return {
        "is_module": True,
        "state": state,
        "trainable": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
        "children": {name: type(m).__name__ for name, m in model.named_children()},
        "modules": [[name, type(m).__name__, len(list(m.children()))] for name, m in model.named_modules()],
    }


def load(model: Any, weights: dict, dtype: str = "float64") -> None:
    """Convert ``model`` to ``dtype`` and load ``weights`` strictly (every name, every shape)."""
    import torch

    model.to(getattr(torch, dtype))
    model.load_state_dict(weights)


def state_dict(model: Any) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def forward(model: Any, x: Any, train: Any = False, dtype: str = "float64") -> Any:
    """``model(x)`` on a copy in ``dtype``, without gradients: in training mode if ``train``, in the
    mode the model is in if ``train`` is None. A list of modes runs one pass per mode, in order, each on
    a fresh copy of the model but all on the *same* ``x``, and answers the list of outputs: a forward
    pass that changed ``x`` in place shows as a later output the judge does not expect."""
    import torch

    if isinstance(x, Held):
        x = x.value
    if isinstance(x, torch.Tensor):
        x = x.to(getattr(torch, dtype))  # x itself when it has the dtype already

    def one(mode: Any) -> Any:
        net = copy.deepcopy(model).to(getattr(torch, dtype))
        if mode is not None:
            net.train(bool(mode))
        with torch.no_grad():
            out = net(x)
        return out.clone() if isinstance(out, torch.Tensor) else out  # not x itself, which the next pass may change

    return [one(mode) for mode in train] if isinstance(train, (list, tuple)) else one(train)


def trace(model: Any, x: Any, train: bool = False, kind: str = "post", names: list | None = None,
          dtype: str | None = "float64", copy_model: bool = True) -> dict:
    """The first output (``kind="post"``) or first input (``"pre"``) of each named submodule
    (``names``, or all), in call order, for ``model(x)`` without gradients; the model's output,
    and the exception that stopped the forward pass (as data), if one did."""
    import torch

    from .agent import raised

    net = copy.deepcopy(model) if copy_model else model
    if dtype:
        net = net.to(getattr(torch, dtype))
    net.train(train)
    seen: dict[str, Any] = {}
    handles = []
    for name, module in net.named_modules():
        if not name or (names is not None and name not in names):
            continue
        if kind == "pre":
            def hook(_m, args, name=name):
                if args and isinstance(args[0], torch.Tensor):
                    seen.setdefault(name, args[0].detach().cpu().clone())
            handles.append(module.register_forward_pre_hook(hook))
        else:
            def hook(_m, _args, out, name=name):
                if isinstance(out, torch.Tensor):
                    seen.setdefault(name, out.detach().cpu().clone())
            handles.append(module.register_forward_hook(hook))
    out, error = None, None
    try:
        with torch.no_grad():
            out = net(x)
    except Exception as exc:  # noqa: BLE001 - the caller reports the crash itself
        error = raised(exc)
    finally:
        for h in handles:
            h.remove()
    return {"seen": seen, "out": out, "error": error}


def gradients(model: Any, x: Any, y: Any, dtype: str = "float64") -> dict:
    """The gradient of ``cross_entropy(model(x), y)`` with respect to every named parameter, on a
    copy in ``dtype`` in training mode (None where no gradient reaches)."""
    import torch
    import torch.nn.functional as F

    net = copy.deepcopy(model).to(getattr(torch, dtype)).train()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    return {k: None if p.grad is None else p.grad.detach().cpu().clone() for k, p in net.named_parameters()}


def set_mode(model: Any, train: bool) -> None:
    model.train(train)


def submodule(model: Any, name: str) -> Any:
    """``model``'s submodule called ``name`` ("layer2.0.conv1"), to hand to a function that looks
    inside the model at one layer (a Grad-CAM)."""
    return model.get_submodule(name)


# ---------------------------------------------------------------------------------------------
# Objects the judge asks the kernel to make: its own models, loaders, optimizers, losses
# ---------------------------------------------------------------------------------------------

def make_model(spec: dict, weights: dict | None = None, dtype: str = "float64", train: bool = False) -> Any:
    """A model the judge describes (:mod:`autograder.specnet`), with the judge's weights."""
    import torch

    from . import specnet

    model = specnet.build(spec).to(getattr(torch, dtype))
    if weights is not None:
        model.load_state_dict(weights)
    model.train(train)
    return model


# Standard layers a judge's description may name (autograder.specnet uses the same list).
LAYERS = ("Conv2d", "Linear", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
          "Dropout", "Dropout2d", "Sigmoid", "Identity")


def build_layers(spec: dict) -> Any:
    """A tree of standard ``torch.nn`` layers: ``{"layer": name, "args": [...], "kwargs": {...}}`` or
    ``{"seq": [[name, spec], ...]}`` (an ``nn.Sequential`` with those names). The part of
    :mod:`autograder.specnet`'s format that needs no program, so that kernels which may not import
    specnet (its networks are answers to some exercises) can still be handed a judge's module."""
    import torch.nn as nn

    if not isinstance(spec, dict):
        raise ValueError(f"a layer spec is a dict, got {type(spec).__name__}")
    if "layer" in spec:
        if spec["layer"] not in LAYERS:
            raise ValueError(f"layer {spec['layer']!r} is not one the specs may use")
        return getattr(nn, spec["layer"])(*spec.get("args", []), **spec.get("kwargs", {}))
    if "seq" in spec:
        seq = nn.Sequential()
        for name, child in spec["seq"]:
            seq.add_module(str(name), build_layers(child))
        return seq
    raise ValueError("a layer spec needs 'layer' or 'seq'")


def make_layers(spec: dict, weights: dict | None = None, dtype: str = "float64", train: bool = False) -> Any:
    """:func:`make_model` for a tree of standard layers only (:func:`build_layers`): a5's blocks get their
    ``downsample`` this way."""
    import torch

    model = build_layers(spec).to(getattr(torch, dtype))
    if weights is not None:
        model.load_state_dict(weights)
    model.train(train)
    return model


def make_loader(X: Any, y: Any, batch_size: int, shuffle: bool = False, seed: int | None = None) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle, generator=generator)


def make_generator(seed: int) -> Any:
    """A CPU ``torch.Generator`` seeded with ``seed``: the source of randomness a check hands to a
    student's function that must draw from it (a4's ``augment``)."""
    import torch

    return torch.Generator().manual_seed(int(seed))


def _gradient_of_score(model: Any, x: Any, y: Any) -> Any:
    """d s_y / d x for each example (the model as it is given: its mode is the caller's business)."""
    import torch

    x = x.detach().clone().requires_grad_(True)
    scores = model(x)
    (grad,) = torch.autograd.grad(scores.gather(1, y.view(-1, 1)).sum(), x)
    return grad


def _explain_gradient(model: Any, x: Any, y: Any) -> Any:
    return _gradient_of_score(model, x, y).sum(dim=1)  # signed, summed over the channels: (N, H, W)


def _explain_saliency(model: Any, x: Any, y: Any) -> Any:
    return _gradient_of_score(model, x, y).abs().amax(dim=1)  # |gradient|, max over the channels: (N, H, W)


# Explanations a check hands to a function that takes one (a6's randomisation_check): explain(model, x, y)
# -> (N, H, W), computed on the model as it is given, the same code in the kernel and in the judge.
EXPLAINERS = {"gradient": _explain_gradient, "saliency": _explain_saliency}


def make_explainer(name: str) -> Any:
    """The explanation ``name`` of :data:`EXPLAINERS`, as a function ``explain(model, x, y)``."""
    if type(name) is not str or name not in EXPLAINERS:
        raise ValueError(f"unknown explanation {name!r}")
    return EXPLAINERS[name]


OPTIMIZERS = ("SGD", "Adam")
LOSSES = ("CrossEntropyLoss",)


def make_optimizer(model: Any, name: str, **kwargs: Any) -> Any:
    import torch

    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}")
    return getattr(torch.optim, name)(model.parameters(), **kwargs)


def make_loss(name: str, **kwargs: Any) -> Any:
    import torch.nn as nn

    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}")
    return getattr(nn, name)(**kwargs)


class Held:
    """A value the judge keeps in the kernel (a batch ``x``) to hand to several calls: what a call
    does to it in place reaches the next call, so its consequences can be checked."""

    def __init__(self, value: Any):
        self.value = value


def hold(value: Any) -> Held:
    return Held(value)


def call_with(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with every :class:`Held` argument replaced by the value it holds."""
    def unheld(v: Any) -> Any:
        return v.value if isinstance(v, Held) else v

    return fn(*[unheld(a) for a in args], **{k: unheld(v) for k, v in kwargs.items()})


def recipe(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run one of the grader's training recipes (:mod:`autograder.recipes`) on the student's code."""
    from . import recipes

    if name not in recipes.RECIPES:
        raise ValueError(f"unknown recipe {name!r}")
    return recipes.RECIPES[name](*args, **kwargs)


OPERATIONS = {fn.__name__: fn for fn in (
    new, method, get, has, set_item, get_item, module_info, load, state_dict, forward, trace, gradients,
    set_mode, submodule, make_model, make_layers, make_loader, make_generator, make_explainer, make_optimizer, make_loss,
    hold, call_with, recipe)}
