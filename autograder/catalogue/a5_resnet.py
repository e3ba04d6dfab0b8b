"""Realistic wrong answers for a5_resnet."""

from . import WrongAnswer as W

# ResNet builds the student's BasicBlock and Bottleneck; CifarResNet builds the student's BasicBlock.
DEPENDS = {
    "basic_block": ("resnet", "cifar_resnet"),
    "bottleneck": ("resnet",),
}

_B = ("BasicBlock",)
_BN = ("Bottleneck",)
_R = ("ResNet", "resnet18", "resnet34", "resnet50")
_C = ("CifarResNet",)
_SE = ("SqueezeExcitation",)

_BASIC_CONV1 = "nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)"
_BASIC_CONV2 = "nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)"

WRONG_ANSWERS = [
    # 1. BasicBlock
    W("basic_block", "ReLU before the addition instead of after it",
      (("out = self.bn2(self.conv2(out))", "out = self.relu(self.bn2(self.conv2(out)))"),
       ("return self.relu(out)", "return out")), _B),
    W("basic_block", "no ReLU after the addition", (("return self.relu(out)", "return out"),), _B),
    W("basic_block", "shortcut forgotten (no addition)", (("        out = out + identity\n", ""),), _B),
    W("basic_block", "stride on conv2 instead of conv1",
      ((_BASIC_CONV1, "nn.Conv2d(inplanes, planes, kernel_size=3, stride=1, padding=1, bias=False)"),
       (_BASIC_CONV2, "nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)")), _B),
    W("basic_block", "downsample ignored when given (always the identity)",
      (("self.downsample = downsample  # None (identity shortcut) or the caller's projection",
        "self.downsample = None"),), _B),
    W("basic_block", "downsample applied to the output instead of x",
      (("identity = x if self.downsample is None else self.downsample(x)", "identity = x"),
       ("out = out + identity", "out = out + (identity if self.downsample is None else self.downsample(out))")), _B),
    W("basic_block", "builds its own projection when none is given (and ignores the one given)",
      (("self.downsample = downsample  # None (identity shortcut) or the caller's projection",
        "self.downsample = None\n        if stride != 1 or inplanes != planes:\n"
        "            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, "
        "bias=False), nn.BatchNorm2d(planes))"),), _B),
    W("basic_block", "shortcut added before bn2",
      (("out = self.bn2(self.conv2(out))\n        out = out + identity",
        "out = self.conv2(out) + identity\n        out = self.bn2(out)"),), _B),
    W("basic_block", "convolutions keep their bias",
      ((_BASIC_CONV1, "nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1)"),
       (_BASIC_CONV2, "nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1)")), _B),
    # 2. Bottleneck
    W("bottleneck", "stride on the 1×1 conv1 (ResNet v1) instead of the 3×3 conv2",
      (("nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)",
        "nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)"),
       ("kernel_size=3, stride=stride, padding=1", "kernel_size=3, padding=1")), _BN),
    W("bottleneck", "downsample stored but not registered (kept in a list)",
      (("        self.downsample = downsample\n", "        self.downsample = [downsample] if downsample is not None else None\n"),
       ("identity = x if self.downsample is None else self.downsample(x)",
        "identity = x if self.downsample is None else self.downsample[0](x)")), _BN),
    W("bottleneck", "expansion applied to the 3×3 conv2 instead of conv3",
      (("nn.Conv2d(planes, planes, kernel_size=3", "nn.Conv2d(planes, planes * self.expansion, kernel_size=3"),
       ("self.bn2 = nn.BatchNorm2d(planes)", "self.bn2 = nn.BatchNorm2d(planes * self.expansion)"),
       ("nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)",
        "nn.Conv2d(planes * self.expansion, planes * self.expansion, kernel_size=1, bias=False)")), _BN),
    W("bottleneck", "ReLU after bn3, before the addition",
      (("out = self.bn3(self.conv3(out))", "out = self.relu(self.bn3(self.conv3(out)))"),), _BN),
    W("bottleneck", "shortcut is always x (the given downsample stored but not used)",
      (("identity = x if self.downsample is None else self.downsample(x)", "identity = x"),), _BN),
    # 3. ResNet
    W("resnet", "max pooling after the stem forgotten",
      (("x = self.maxpool(self.relu(self.bn1(self.conv1(x))))", "x = self.relu(self.bn1(self.conv1(x)))"),), _R),
    W("resnet", "layer2 built with stride 1",
      (("self._make_layer(block, 128, layers[1], stride=2)", "self._make_layer(block, 128, layers[1])"),), _R),
    W("resnet", "fc from 512 features whatever the block (wrong for Bottleneck)",
      (("nn.Linear(512 * block.expansion, num_classes)", "nn.Linear(512, num_classes)"),), _R),
    W("resnet", "one block too many per stage (range(blocks) after the first)",
      (("for _ in range(1, blocks):", "for _ in range(blocks):"),), _R),
    W("resnet", "self.inplanes not updated after a stage's first block",
      (("        self.inplanes = planes * block.expansion\n", ""),), _R),
    W("resnet", "_make_layer builds no downsample when only the channels change",
      (("if stride != 1 or self.inplanes != planes * block.expansion:", "if stride != 1:"),), _R),
    W("resnet", "_make_layer compares inplanes with planes, not planes * expansion",
      (("if stride != 1 or self.inplanes != planes * block.expansion:", "if stride != 1 or self.inplanes != planes:"),), _R),
    W("resnet", "projection shortcut without the stride",
      (("kernel_size=1, stride=stride, bias=False", "kernel_size=1, bias=False"),), _R),
    W("resnet", "projection always strided by 2",
      (("kernel_size=1, stride=stride, bias=False", "kernel_size=1, stride=2, bias=False"),), _R),
    W("resnet", "the downsample given to every block of the stage",
      (("layers.append(block(self.inplanes, planes))", "layers.append(block(self.inplanes, planes, 1, downsample))"),), _R),
    W("resnet", "downsample built but not passed to the first block",
      (("layers = [block(self.inplanes, planes, stride, downsample)]", "layers = [block(self.inplanes, planes, stride)]"),), _R),
    W("resnet", "resnet50 built from BasicBlocks",
      (("ResNet(Bottleneck, [3, 4, 6, 3], num_classes)", "ResNet(BasicBlock, [3, 4, 6, 3], num_classes)"),), _R),
    # 4. CifarResNet
    W("cifar_resnet", "every stage starts with stride 2", (("stride = 1 if i == 0 else 2", "stride = 2"),), _C),
    W("cifar_resnet", "projection shortcut without the stride",
      (("kernel_size=1, stride=stride, bias=False", "kernel_size=1, bias=False"),), _C),
    W("cifar_resnet", "no downsample for a stage whose width stays the same (stride alone)",
      (("if stride != 1 or inplanes != width:", "if inplanes != width:"),), _C),
    W("cifar_resnet", "fc sized by the first width",
      (("nn.Linear(widths[-1], num_classes)", "nn.Linear(widths[0], num_classes)"),), _C),
    W("cifar_resnet", "a stage's first block takes widths[0] channels (inplanes not updated)",
      (("            inplanes = width\n", ""),), _C),
    W("cifar_resnet", "one block too many per stage",
      (("for _ in range(1, blocks)", "for _ in range(blocks)"),), _C),
    W("cifar_resnet", "no ReLU after the stem",
      (("x = self.relu(self.bn1(self.conv1(x)))", "x = self.bn1(self.conv1(x))"),), _C),
    W("cifar_resnet", "features detached before the classifier (only fc would learn)",
      (("x = torch.flatten(self.avgpool(x), 1)", "x = torch.flatten(self.avgpool(x), 1).detach()"),), _C),
    # 5. Squeeze-and-excitation
    W("se_block", "no sigmoid on the scale",
      (("scale = self.scale_activation(self.fc2(scale))", "scale = self.fc2(scale)"),), _SE),
    W("se_block", "adds the scale instead of multiplying", (("return x * scale", "return x + scale"),), _SE),
    W("se_block", "max pooling for the squeeze",
      (("self.avgpool = nn.AdaptiveAvgPool2d(1)", "self.avgpool = nn.AdaptiveMaxPool2d(1)"),), _SE),
    W("se_block", "fc2 maps back to squeeze_channels",
      (("nn.Conv2d(squeeze_channels, input_channels, kernel_size=1)",
        "nn.Conv2d(squeeze_channels, squeeze_channels, kernel_size=1)"),), _SE),
    W("se_block", "scale flattened to (N, C), which broadcasts against the wrong axes",
      (("return x * scale", "return x * scale.flatten(1)"),), _SE),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "se_block: adds the scale instead of multiplying"
