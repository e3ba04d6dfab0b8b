"""Networks described as data, so the judge can have one built inside a student's kernel.

Some exercises take a model as their input — ``trace_shapes(model, x)``, ``train_epoch(model,
loader, optimizer, loss_fn)``. A model cannot cross the protocol, but its description can: a
tree of standard ``torch.nn`` layers with names, and for a module with its own ``forward`` a short
program over its children. The kernel builds it here; the judge builds the very same network in its
own process and computes the expected answer from it.

A spec is one of::

    {"layer": "Conv2d", "args": [1, 6, 5], "kwargs": {"padding": 2}}   # a torch.nn layer (from ops.LAYERS)
    {"seq": [[name, spec], ...]}                                       # nn.Sequential with those names
    {"net": [[name, spec], ...], "forward": [step, ...]}               # children and a forward program

A step acts on the running tensor ``x``: ``["call", child]``, ``["relu"]``, ``["max_pool", k]``,
``["flatten"]``, ``["save", slot]``, ``["load", slot]``, ``["add", slot]`` (``x + slot``) and
``["mul", slot]`` (``slot * x``) — enough for LeNet-5, VGG, residual and squeeze-and-excitation
blocks. A child may be called more than once (a shared ReLU).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import build_layers  # standard layers, as ops builds them for any kernel

STEPS = ("call", "relu", "max_pool", "flatten", "save", "load", "add", "mul")


class SpecNet(nn.Module):
    """A module whose forward is a program over its children (see the module's docstring)."""

    def __init__(self, children: list, program: list):
        super().__init__()
        for name, spec in children:
            self.add_module(str(name), build(spec))
        self.program = [list(step) for step in program]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slots: dict[str, torch.Tensor] = {}
        for op, *args in self.program:
            if op == "call":
                x = getattr(self, args[0])(x)
            elif op == "relu":
                x = F.relu(x)
            elif op == "max_pool":
                x = F.max_pool2d(x, int(args[0]))
            elif op == "flatten":
                x = torch.flatten(x, 1)
            elif op == "save":
                slots[args[0]] = x
            elif op == "load":
                x = slots[args[0]]
            elif op == "add":
                x = x + slots[args[0]]
            elif op == "mul":
                x = slots[args[0]] * x
        return x


def build(spec: dict) -> nn.Module:
    """The module ``spec`` describes (random weights; load the judge's with ``load_state_dict``)."""
    if not isinstance(spec, dict):
        raise ValueError(f"a model spec is a dict, got {type(spec).__name__}")
    if "layer" in spec:  # one standard layer, built as ops builds a judge's layers for any kernel
        return build_layers(spec)
    if "seq" in spec:  # children may be programs ("net"), so they are built here
        seq = nn.Sequential()
        for name, child in spec["seq"]:
            seq.add_module(str(name), build(child))
        return seq
    if "net" in spec:
        for step in spec.get("forward", []):
            if not step or step[0] not in STEPS:
                raise ValueError(f"unknown step {step!r}")
        return SpecNet(spec["net"], spec.get("forward", []))
    raise ValueError("a model spec needs 'layer', 'seq' or 'net'")


# ---------------------------------------------------------------------------------------------
# The networks the course's checks hand to student code
# ---------------------------------------------------------------------------------------------

def layer(kind: str, *args: Any, **kwargs: Any) -> dict:
    return {"layer": kind, "args": list(args), "kwargs": kwargs}


def lenet5(num_classes: int = 10) -> dict:
    """LeNet-5 as the course builds it (conv1 pads by 2; F.relu and F.max_pool2d between layers)."""
    children = [["conv1", layer("Conv2d", 1, 6, 5, padding=2)], ["conv2", layer("Conv2d", 6, 16, 5)],
                ["fc1", layer("Linear", 400, 120)], ["fc2", layer("Linear", 120, 84)],
                ["fc3", layer("Linear", 84, num_classes)]]
    program = [["call", "conv1"], ["relu"], ["max_pool", 2], ["call", "conv2"], ["relu"], ["max_pool", 2],
               ["flatten"], ["call", "fc1"], ["relu"], ["call", "fc2"], ["relu"], ["call", "fc3"]]
    return {"net": children, "forward": program}


def projection(inplanes: int, outplanes: int, stride: int) -> dict:
    """torchvision's projection shortcut (``downsample``): Sequential(1×1 conv with the stride, BatchNorm2d)."""
    return {"seq": [["0", layer("Conv2d", inplanes, outplanes, 1, stride=stride, bias=False)],
                    ["1", layer("BatchNorm2d", outplanes)]]}


def basic_block(inplanes: int, planes: int, stride: int) -> dict:
    """torchvision's BasicBlock: conv-bn-relu-conv-bn, plus the shortcut, then the shared ReLU again."""
    children = [["conv1", layer("Conv2d", inplanes, planes, 3, stride=stride, padding=1, bias=False)],
                ["bn1", layer("BatchNorm2d", planes)], ["relu", layer("ReLU")],
                ["conv2", layer("Conv2d", planes, planes, 3, padding=1, bias=False)],
                ["bn2", layer("BatchNorm2d", planes)]]
    program = [["save", "in"], ["call", "conv1"], ["call", "bn1"], ["call", "relu"], ["call", "conv2"],
               ["call", "bn2"], ["save", "out"], ["load", "in"]]
    if stride != 1 or inplanes != planes:
        children.append(["downsample", projection(inplanes, planes, stride)])
        program.append(["call", "downsample"])
    program += [["add", "out"], ["call", "relu"]]
    return {"net": children, "forward": program}


def cifar_resnet(blocks: int = 3, widths: tuple = (16, 32, 64), num_classes: int = 10, in_channels: int = 3) -> dict:
    """He et al.'s CIFAR ResNet with BasicBlocks (the shape of models.cifar_resnet)."""
    children = [["conv1", layer("Conv2d", in_channels, widths[0], 3, padding=1, bias=False)],
                ["bn1", layer("BatchNorm2d", widths[0])], ["relu", layer("ReLU")]]
    inplanes = widths[0]
    for i, width in enumerate(widths):
        stage = []
        for b in range(blocks):
            stage.append([str(b), basic_block(inplanes, width, 1 if (i == 0 or b > 0) else 2)])
            inplanes = width
        children.append([f"layer{i + 1}", {"seq": stage}])
    children += [["avgpool", layer("AdaptiveAvgPool2d", 1)], ["fc", layer("Linear", widths[-1], num_classes)]]
    program = [["call", name] for name in ("conv1", "bn1", "relu", "layer1", "layer2", "layer3", "avgpool")]
    program += [["flatten"], ["call", "fc"]]
    return {"net": children, "forward": program}


def squeeze_excitation(input_channels: int, squeeze_channels: int) -> dict:
    """torchvision's SqueezeExcitation: scale = sigmoid(fc2(relu(fc1(avgpool(x))))); x * scale."""
    children = [["avgpool", layer("AdaptiveAvgPool2d", 1)],
                ["fc1", layer("Conv2d", input_channels, squeeze_channels, 1)],
                ["fc2", layer("Conv2d", squeeze_channels, input_channels, 1)],
                ["activation", layer("ReLU")], ["scale_activation", layer("Sigmoid")]]
    program = [["save", "in"], ["call", "avgpool"], ["call", "fc1"], ["call", "activation"], ["call", "fc2"],
               ["call", "scale_activation"], ["mul", "in"]]
    return {"net": children, "forward": program}


def vgg(cfg: list, in_channels: int = 3, num_classes: int = 10, hidden: int = 64, batch_norm: bool = False) -> dict:
    """VGG's features (3×3 convs with padding 1, "M" for 2×2 pooling), a 7×7 average pool and a
    classifier with ``hidden`` units (instead of 4096), with torchvision's names."""
    features, c, i = [], in_channels, 0
    for v in cfg:
        if v == "M":
            features.append([str(i), layer("MaxPool2d", 2, 2)])
            i += 1
            continue
        features.append([str(i), layer("Conv2d", c, int(v), 3, padding=1)])
        i += 1
        if batch_norm:
            features.append([str(i), layer("BatchNorm2d", int(v))])
            i += 1
        features.append([str(i), layer("ReLU", True)])
        i += 1
        c = int(v)
    classifier = [["0", layer("Linear", c * 7 * 7, hidden)], ["1", layer("ReLU", True)], ["2", layer("Dropout", 0.5)],
                  ["3", layer("Linear", hidden, hidden)], ["4", layer("ReLU", True)], ["5", layer("Dropout", 0.5)],
                  ["6", layer("Linear", hidden, num_classes)]]
    children = [["features", {"seq": features}], ["avgpool", layer("AdaptiveAvgPool2d", 7)],
                ["classifier", {"seq": classifier}]]
    program = [["call", "features"], ["call", "avgpool"], ["flatten"], ["call", "classifier"]]
    return {"net": children, "forward": program}


def probe_net(num_classes: int, channels: int = 1, width: int = 4, size: int = 8, p: float = 0.5) -> dict:
    """A tiny ConvNet with BatchNorm and Dropout, so that train and eval modes differ."""
    return {"seq": [["0", layer("Conv2d", channels, width, 3, padding=1)], ["1", layer("BatchNorm2d", width)],
                    ["2", layer("ReLU")], ["3", layer("MaxPool2d", 2)], ["4", layer("Flatten")],
                    ["5", layer("Dropout", p)], ["6", layer("Linear", width * (size // 2) ** 2, num_classes)]]}
