"""Reference models for the PyTorch half of the course: LeNet-5, VGG accounting, BatchNorm, the
ResNet family and DenseNet-121 (torchvision's naming scheme and signatures, without torchvision) and
a squeeze-and-excitation block.

The assignments check the student's modules against these: parameter counts, ``state_dict`` names
and shapes, per-layer output shapes, and identical outputs once the student's module has loaded the
reference's weights. Reference weights are not downloaded: :func:`reference_weights` makes them,
deterministically, from a seed (random, with non-trivial BatchNorm statistics so that a misplaced
BatchNorm shows). :func:`run` evaluates a reference on :func:`autograder.reference.device` — the GPU
when one is present — in float64 and returns the result on the CPU.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .reference import device  # models -> reference, never the other way

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "DENSENET_PARAMS",
    "DenseNet",
    "accuracy",
    "LeNet5",
    "RESNET_PARAMS",
    "ResNet",
    "SqueezeExcitation",
    "VGG",
    "VGG_CONFIGS",
    "batch_norm2d",
    "cifar_resnet",
    "count_params",
    "densenet121",
    "needs_projection",
    "projection",
    "layer_shapes",
    "reference_weights",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "run",
    "vgg_accounting",
]

# Parameter counts at 1000 classes, as torchvision reports them.
RESNET_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                 "resnet101": 44_549_160, "resnet152": 60_192_808}
DENSENET_PARAMS = {"densenet121": 7_978_856}

VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------------
# LeNet-5


class LeNet5(nn.Module):
    """The modern LeNet-5 on 28×28 digits: ReLU and 2×2 max pooling where LeCun (1998) had tanh
    and average "subsampling"; conv1 pads by 2 so the 28×28 input behaves like the original 32×32.

    conv1 (6@5×5, pad 2) → relu → pool → conv2 (16@5×5) → relu → pool → flatten 400 →
    fc1 120 → relu → fc2 84 → relu → fc3 num_classes. 61,706 parameters for 10 classes.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# --------------------------------------------------------------------------------------------
# VGG


class VGG(nn.Module):
    """VGG from a configuration list (ints: 3×3 conv output channels, "M": 2×2 max pool), with
    torchvision's names: ``features``, ``avgpool`` (adaptive, 7×7), ``classifier``."""

    def __init__(self, cfg: Sequence[int | str], num_classes: int = 1000, in_channels: int = 3,
                 batch_norm: bool = False, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(c, int(v), kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            c = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def vgg_accounting(cfg: Sequence[int | str], in_channels: int = 3, image_size: int = 224,
                   num_classes: int = 1000, hidden: int = 4096) -> dict[str, int]:
    """Parameters and forward activations of a VGG-style network, counted as in the CS231n notes.

    3×3 convolutions with padding 1 keep the size; "M" (2×2 max pool, stride 2) halves it; then
    flatten and fully connected layers ``hidden`` → ``hidden`` → ``num_classes``. Activations count
    the input image, every conv and pool output and every FC output (ReLU works in place).
    Returns {"params", "activations" (values per image), "bytes" (float32, 4 per value)}.
    For VGG-16 at 224×224: 138,357,544 parameters and 15,237,608 values (≈ 58 MiB). The CS231n notes
    print "24M, ~93MB" for the same table, whose rows add up to 15.2M (cs231n.github.io issue #88).
    """
    c, h = in_channels, image_size
    params, activations = 0, c * h * h
    for v in cfg:
        if v == "M":
            h //= 2
        else:
            params += (9 * c + 1) * int(v)
            c = int(v)
        activations += c * h * h
    features = c * h * h
    for n_in, n_out in ((features, hidden), (hidden, hidden), (hidden, num_classes)):
        params += (n_in + 1) * n_out
        activations += n_out
    return {"params": params, "activations": activations, "bytes": 4 * activations}


# --------------------------------------------------------------------------------------------
# BatchNorm


def batch_norm2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                 running_var: torch.Tensor, training: bool, momentum: float = 0.1,
                 eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What ``nn.BatchNorm2d`` computes, as a function: (out, new running_mean, new running_var).

    Training: normalise each channel by the mean and the biased variance over (N, H, W); update
    running_mean ← (1 − momentum)·running_mean + momentum·mean and running_var likewise with the
    *unbiased* variance. Evaluation: normalise by the running statistics, which stay as they are.
    Inputs are not modified.
    """
    rm, rv = running_mean.clone(), running_var.clone()
    out = F.batch_norm(x, rm, rv, weight, bias, training=training, momentum=momentum, eps=eps)
    return out, rm, rv


# --------------------------------------------------------------------------------------------
# ResNet, with torchvision's names (v1.5: the stride of a bottleneck sits on its 3×3 conv)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def projection(inplanes: int, outplanes: int, stride: int) -> nn.Sequential:
    """The projection shortcut torchvision calls ``downsample``: a 1×1 conv with the stride, then BatchNorm
    (state_dict keys ``downsample.0.weight``, ``downsample.1.*``)."""
    return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))


class BasicBlock(nn.Module):
    """3×3 conv → BN → ReLU → 3×3 conv → BN, plus the shortcut, then ReLU (after the addition).

    torchvision's signature: the shortcut is ``downsample`` (a module the caller builds, applied to
    ``x``) or, when None, the identity; the block never builds one itself."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (stride here) → 1×1 expand to planes·4, each with BN, plus the shortcut
    (``downsample`` or the identity, as in :class:`BasicBlock`)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def needs_projection(inplanes: int, outplanes: int, stride: int) -> bool:
    """Whether a block's shortcut must change the shape (torchvision's test in ``_make_layer``)."""
    return stride != 1 or inplanes != outplanes


class ResNet(nn.Module):
    """ImageNet ResNet: conv1 7×7/2 → bn1 → relu → maxpool 3×3/2 → layer1..layer4 (64, 128, 256,
    512 planes; the first block of layers 2–4 has stride 2) → avgpool → fc."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage; its first block gets the stride and, when the shape changes, the projection."""
        downsample = None
        if needs_projection(self.inplanes, planes * block.expansion, stride):
            downsample = projection(self.inplanes, planes * block.expansion, stride)
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


def resnet101(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes)


def resnet152(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes)


class CifarResNet(nn.Module):
    """The small ResNet of He et al. for 32×32 images: conv1 3×3 → bn1 → relu → three stages of
    ``blocks`` BasicBlocks (``widths`` channels; stages 2 and 3 start with stride 2) → avgpool → fc.
    blocks=3, widths=(16, 32, 64) is ResNet-20 with projection shortcuts (built here, where the
    width or the stride changes, and handed to the block as its ``downsample``)."""

    def __init__(self, blocks: int = 3, widths: Sequence[int] = (16, 32, 64), num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages, inplanes = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            downsample = projection(inplanes, w, stride) if needs_projection(inplanes, w, stride) else None
            stage = [BasicBlock(inplanes, w, stride, downsample)] + [BasicBlock(w, w) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            inplanes = w
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_resnet(blocks: int = 3, widths: Sequence[int] = (16, 32, 64), num_classes: int = 10,
                 in_channels: int = 3) -> CifarResNet:
    return CifarResNet(blocks, widths, num_classes, in_channels)


# --------------------------------------------------------------------------------------------
# DenseNet, with torchvision's names (Huang et al. 2017, DenseNet-BC)


class _DenseLayer(nn.Module):
    """norm1 → relu1 → conv1 (1×1, ``bn_size · growth_rate``) → norm2 → relu2 → conv2 (3×3, ``growth_rate``).

    Input: the concatenation of all earlier feature maps of the block (``num_input_features``
    channels); output: the ``growth_rate`` new channels only (the block concatenates them)."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # relu1 works in place on norm1's output, a new tensor: the block's features stay intact
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers ``denselayer1``…; layer i sees ``num_input_features + (i-1)·growth_rate``
    channels; the output is every feature map concatenated in order: input first, then each layer's."""

    def __init__(self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    """norm → relu → conv (1×1, to ``num_output_features``) → pool (2×2 average, stride 2)."""

    def __init__(self, num_input_features: int, num_output_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_input_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(num_input_features, num_output_features, kernel_size=1, stride=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """DenseNet-BC as torchvision builds it: ``features`` = conv0 (7×7/2) → norm0 → relu0 → pool0
    (3×3/2 max) → denseblock1 → transition1 (halves channels and size) → … → denseblockK → norm5;
    then ReLU, global average pool and ``classifier``.

    ``small_input=True`` (small images such as 28×28 digits): conv0 is 3×3 with stride 1 and there is
    no pool0, so the resolution is only halved by the transitions."""

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, bn_size: int = 4, num_classes: int = 1000, in_channels: int = 3,
                 small_input: bool = False):
        super().__init__()
        self.features = nn.Sequential()
        if small_input:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=3, stride=1,
                                                        padding=1, bias=False))
        else:
            self.features.add_module("conv0", nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2,
                                                        padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        if not small_input:
            self.features.add_module("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        num_features = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(num_layers, num_features, bn_size, growth_rate))
            num_features += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(num_features, num_features // 2))
                num_features //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(num_features))
        self.classifier = nn.Linear(num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x))
        out = torch.flatten(F.adaptive_avg_pool2d(out, (1, 1)), 1)
        return self.classifier(out)


def densenet121(num_classes: int = 1000) -> DenseNet:
    return DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018), named as torchvision's: global average pool →
    fc1 (1×1 conv, C → squeeze) → ReLU → fc2 (1×1 conv, squeeze → C) → sigmoid → scale x per channel."""

    def __init__(self, input_channels: int, squeeze_channels: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


# --------------------------------------------------------------------------------------------
# Weights, evaluation and shapes


def reference_weights(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Fill ``model`` in place with weights drawn from ``seed`` and return its float64 state_dict.

    Conv and linear weights are He-scaled normals, biases small normals; BatchNorm gets random
    scales, shifts and running statistics (not the 1/0 defaults, under which a BatchNorm in eval
    mode is nearly the identity and a misplaced one would go unnoticed). The same seed and
    architecture always give the same weights, on any machine.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen, dtype=torch.float64)
                                    * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen, dtype=torch.float64))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
                module.bias.copy_(0.2 * torch.randn(n, generator=gen, dtype=torch.float64))
                module.running_mean.copy_(0.2 * torch.randn(n, generator=gen, dtype=torch.float64))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen, dtype=torch.float64))
    return {k: v.detach().to(torch.float64) if v.is_floating_point() else v.detach().clone()
            for k, v in model.state_dict().items()}


def run(model: nn.Module, x: torch.Tensor, train: bool = False, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``model(x)`` computed on the reference device in ``dtype``, on a copy (the model's own
    BatchNorm statistics are untouched), in eval mode unless ``train``; the result on the CPU."""

    dev = device()
    ref = copy.deepcopy(model).to(device=dev, dtype=dtype)
    ref.train(train)
    with torch.no_grad():
        return ref(x.to(device=dev, dtype=dtype)).cpu()


def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 250) -> float:
    """Fraction of ``X`` that ``model`` (a reference holding trained weights) classifies as ``y``:
    eval mode, no gradients, on the reference device, in the model's dtype."""
    dev = device()
    net = model.to(dev).eval()
    dtype = next(net.parameters()).dtype
    correct = 0
    with torch.no_grad():
        for s in range(0, len(X), batch_size):
            scores = net(X[s:s + batch_size].to(dev, dtype))
            correct += int((scores.argmax(dim=1).cpu() == y[s:s + batch_size]).sum())
    return correct / len(X)


def layer_shapes(model: nn.Module, x: torch.Tensor, leaves_only: bool = True) -> dict[str, tuple[int, ...]]:
    """Output shape of every named submodule (leaves only by default) for input ``x``, in call order,
    traced with forward hooks on the meta device (no arithmetic is done)."""
    meta = copy.deepcopy(model).to("meta")
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in meta.named_modules():
        if name and (not leaves_only or not list(module.children())):
            def hook(_m, _inp, out, name=name):
                shapes.setdefault(name, tuple(out.shape))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            meta(x.to("meta"))
    finally:
        for h in hooks:
            h.remove()
    return shapes

