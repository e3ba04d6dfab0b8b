"""autograder.models: are the reference models the ones the course says they are?

Parameter counts are the published ones (LeNet-5 61,706; VGG-16 138,357,544; ResNet-18/34/50 as
torchvision reports them), state_dict names follow torchvision's scheme, the accounting and the
BatchNorm function agree with PyTorch's own modules, and reference weights are deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.kernel import datasets
from autograder import models as M
from autograder import reference as ref


def test_lenet5_has_61706_parameters_and_the_documented_shapes():
    net = M.LeNet5()
    assert M.count_params(net) == 61_706
    assert M.count_params(M.LeNet5(num_classes=26)) == 61_706 + 16 * 85
    shapes = M.layer_shapes(net, torch.zeros(3, 1, 28, 28))
    assert shapes == {"conv1": (3, 6, 28, 28), "conv2": (3, 16, 10, 10), "fc1": (3, 120),
                      "fc2": (3, 84), "fc3": (3, 10)}


@pytest.mark.parametrize("name, blocks, bns, downsamples", [
    ("resnet18", 8, 1 + 8 * 2 + 3, 3), ("resnet34", 16, 1 + 16 * 2 + 3, 3), ("resnet50", 16, 1 + 16 * 3 + 4, 4)])
def test_resnets_match_torchvision_counts_and_names(name, blocks, bns, downsamples):
    net = getattr(M, name)()
    assert M.count_params(net) == M.RESNET_PARAMS[name]
    sd = net.state_dict()
    convs = 1 + blocks * (3 if name == "resnet50" else 2) + downsamples
    assert len(sd) == 5 * bns + convs + 2  # BN: weight, bias, running_mean, running_var, num_batches_tracked
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.num_batches_tracked", "layer4.1.bn2.bias", "fc.weight", "fc.bias"):
        assert key in sd, key
    assert ("layer1.0.downsample.0.weight" in sd) == (name == "resnet50")  # 64 -> 256 needs a projection
    assert sd["fc.weight"].shape == (1000, 2048 if name == "resnet50" else 512)


@pytest.mark.parametrize("name", ["resnet101", "resnet152"])
def test_deep_resnets_match_torchvision_counts(name):
    with torch.device("meta"):
        net = getattr(M, name)()
    assert M.count_params(net) == M.RESNET_PARAMS[name]
    assert "layer3.22.conv3.weight" in net.state_dict()


def test_blocks_take_torchvisions_downsample_and_never_build_their_own():
    block = M.BasicBlock(8, 16, 2)  # no downsample given: the shortcut is the identity, whatever the shapes
    assert not any(k.startswith("downsample") for k in block.state_dict()) and block.downsample is None
    with pytest.raises(RuntimeError):
        block(torch.zeros(1, 8, 6, 6))
    proj = M.projection(8, 16, 2)
    block = M.BasicBlock(8, 16, 2, proj)
    assert block.downsample is proj and "downsample.0.weight" in block.state_dict()
    assert "downsample.1.running_var" in block.state_dict()
    assert block(torch.zeros(1, 8, 6, 6)).shape == (1, 16, 3, 3)
    bottleneck = M.Bottleneck(16, 4, downsample=None)
    assert bottleneck(torch.zeros(1, 16, 5, 5)).shape == (1, 16, 5, 5)
    assert M.Bottleneck(8, 4, 2, M.projection(8, 16, 2))(torch.zeros(1, 8, 5, 5)).shape == (1, 16, 3, 3)
    # _make_layer projects where only the channels change (layer1 of ResNet-50: 64 -> 256, stride 1)
    with torch.device("meta"):
        assert "layer1.0.downsample.0.weight" in M.resnet50().state_dict()
    sd = M.cifar_resnet(1, (4, 8, 8), in_channels=1).state_dict()
    assert "layer1.0.downsample.0.weight" not in sd and "layer2.0.downsample.0.weight" in sd  # stride 2, 4 -> 8


def test_densenet121_has_torchvisions_7978856_parameters_and_names():
    with torch.device("meta"):
        net = M.densenet121()
    assert M.count_params(net) == M.DENSENET_PARAMS["densenet121"] == 7_978_856
    sd = net.state_dict()
    for key in ("features.conv0.weight", "features.norm0.running_mean", "features.denseblock1.denselayer1.norm1.weight",
                "features.denseblock1.denselayer6.conv2.weight", "features.transition1.norm.weight",
                "features.transition1.conv.weight", "features.denseblock3.denselayer24.conv1.weight",
                "features.denseblock4.denselayer16.norm2.bias", "features.norm5.weight", "classifier.weight"):
        assert key in sd, key
    assert not any("transition4" in k or "pool" in k for k in sd)
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)  # bn_size * growth_rate
    assert sd["features.denseblock1.denselayer6.norm1.weight"].shape == (64 + 5 * 32,)
    assert sd["features.transition1.conv.weight"].shape == (128, 256, 1, 1)  # 64 + 6 * 32 = 256, halved
    assert sd["classifier.weight"].shape == (1000, 1024)
    assert [name for name, _ in net.features.named_children()][:4] == ["conv0", "norm0", "relu0", "pool0"]
    shapes = M.layer_shapes(net, torch.zeros(1, 3, 224, 224), leaves_only=False)
    assert [shapes[f"features.{s}"] for s in ("pool0", "denseblock1", "transition1", "transition3", "norm5")] == [
        (1, 64, 56, 56), (1, 256, 56, 56), (1, 128, 28, 28), (1, 512, 7, 7), (1, 1024, 7, 7)]


def test_dense_block_concatenates_its_input_first_then_each_layer():
    torch.manual_seed(0)
    block = M._DenseBlock(3, 5, 2, 4).double().eval()
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    out = block(x)
    assert out.shape == (2, 5 + 3 * 4, 6, 6)
    torch.testing.assert_close(out[:, :5], x)
    first = block.denselayer1(x)
    torch.testing.assert_close(out[:, 5:9], first)
    torch.testing.assert_close(out[:, 9:13], block.denselayer2(torch.cat([x, first], 1)))


def test_small_densenet_for_digits():
    net = M.DenseNet(growth_rate=6, block_config=(2, 2, 2), num_init_features=8, bn_size=2, num_classes=10,
                     in_channels=1, small_input=True)
    assert "features.pool0" not in dict(net.named_modules())
    shapes = M.layer_shapes(net, torch.zeros(2, 1, 28, 28), leaves_only=False)
    assert shapes["features.transition1"] == (2, 10, 14, 14) and shapes["features.norm5"] == (2, 11 + 12, 7, 7)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_resnet_stage_shapes_at_224():
    shapes = M.layer_shapes(M.resnet50(), torch.zeros(1, 3, 224, 224), leaves_only=False)
    assert [shapes[s] for s in ("maxpool", "layer1", "layer2", "layer3", "layer4", "fc")] == [
        (1, 64, 56, 56), (1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14), (1, 2048, 7, 7), (1, 1000)]
    assert M.layer_shapes(M.resnet18(), torch.zeros(1, 3, 224, 224), False)["layer4"] == (1, 512, 7, 7)


def test_cifar_resnet20_and_se_block():
    assert M.count_params(M.cifar_resnet()) == 272_474
    assert M.layer_shapes(M.cifar_resnet(), torch.zeros(2, 3, 32, 32), False)["layer3"] == (2, 64, 8, 8)
    se = M.SqueezeExcitation(16, 4)
    assert M.count_params(se) == (16 * 4 + 4) + (4 * 16 + 16)
    x = torch.randn(2, 16, 5, 7, dtype=torch.float64)
    se.double()
    scale = torch.sigmoid(se.fc2(torch.relu(se.fc1(x.mean((2, 3), keepdim=True)))))
    torch.testing.assert_close(se(x), scale * x)


@pytest.mark.parametrize("name", sorted(M.VGG_CONFIGS))
def test_vgg_accounting_agrees_with_the_module_and_its_hooks(name):
    cfg = M.VGG_CONFIGS[name]
    acc = M.vgg_accounting(cfg)
    net = M.VGG(cfg)
    assert acc["params"] == M.count_params(net)
    shapes = M.layer_shapes(net, torch.zeros(1, 3, 224, 224))
    counted = 3 * 224 * 224 + sum(int(np.prod(s)) for k, s in shapes.items()
                                  if isinstance(net.get_submodule(k), (nn.Conv2d, nn.MaxPool2d, nn.Linear)))
    assert acc["activations"] == counted
    assert acc["bytes"] == 4 * counted


def test_vgg16_figures():
    acc = M.vgg_accounting(M.VGG_CONFIGS["vgg16"])
    # The per-layer table of the CS231n notes sums to 15.2M values (its "24M, ~93MB" total does not
    # add up: cs231n.github.io issue #88); we count what the table lists.
    assert acc == {"params": 138_357_544, "activations": 15_237_608, "bytes": 60_950_432}
    small = M.vgg_accounting([8, "M", 16, "M"], in_channels=1, image_size=28, num_classes=10, hidden=32)
    assert small["params"] == (9 + 1) * 8 + (72 + 1) * 16 + (16 * 49 + 1) * 32 + 33 * 32 + 33 * 10


@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 5), c=st.integers(1, 4), h=st.integers(1, 5), w=st.integers(1, 5),
       training=st.booleans(), momentum=st.sampled_from([0.1, 0.3, 0.9]), seed=st.integers(0, 2**31))
def test_batch_norm2d_is_nn_batchnorm2d(n, c, h, w, training, momentum, seed):
    if training and n * h * w == 1:
        return  # PyTorch refuses to normalise a single value per channel
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, dtype=torch.float64) * 3 + 1
    bn = nn.BatchNorm2d(c, momentum=momentum).double()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
        bn.bias.copy_(torch.randn(c, generator=g, dtype=torch.float64))
        bn.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.5)
    before = (bn.running_mean.clone(), bn.running_var.clone())
    out, rm, rv = M.batch_norm2d(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, training, momentum)
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])  # not in place
    bn.train(training)
    with torch.no_grad():
        expected = bn(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(rm, bn.running_mean)
    torch.testing.assert_close(rv, bn.running_var)
    if training and n * h * w > 1:  # the running variance is the unbiased one, normalising uses the biased one
        m = n * h * w
        unbiased = x.var(dim=(0, 2, 3), unbiased=True)
        torch.testing.assert_close(rv, (1 - momentum) * before[1] + momentum * unbiased)
        assert not torch.allclose(unbiased, unbiased * (m - 1) / m)


def test_reference_weights_are_deterministic_and_nontrivial():
    a, b = M.BasicBlock(4, 8, 2), M.BasicBlock(4, 8, 2)
    sa, sb = M.reference_weights(a, 7), M.reference_weights(b, 7)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(M.reference_weights(M.BasicBlock(4, 8, 2), 8)["conv1.weight"], sa["conv1.weight"])
    assert all(sa[k].dtype == torch.float64 for k in sa if "num_batches" not in k)
    assert not torch.allclose(sa["bn1.running_var"], torch.ones(8, dtype=torch.float64))  # BN is not left at its 1/0 defaults


def test_run_uses_a_copy_in_eval_mode_and_returns_cpu_float64():
    net = M.BasicBlock(3, 3).double()
    M.reference_weights(net, 1)
    before = net.bn1.running_mean.clone()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    y_eval, y_train = M.run(net, x), M.run(net, x, train=True)
    assert y_eval.device.type == "cpu" and y_eval.dtype == torch.float64
    assert not torch.allclose(y_eval, y_train)  # eval uses the running statistics
    assert torch.equal(net.bn1.running_mean, before) and net.training  # the model itself is untouched
    net.eval()
    torch.testing.assert_close(y_eval, net(x).detach(), **dict(zip(("rtol", "atol"), ref.tolerance(torch.float64))))


def test_models_and_reference_do_not_import_each_other_in_a_circle():
    """models uses reference (its device); reference knows nothing of models."""
    import subprocess
    import sys

    code = ("import sys, autograder.reference; "
            "print('autograder.models' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_perturbed_digits_are_fresh_deterministic_and_in_range():
    images, _ = datasets.mnist_5k()
    x = images[:200, None].astype(np.float64) / 255
    p = datasets.perturb_digits(x, seed=3)
    assert p.shape == x.shape and p.min() >= 0 and p.max() <= 1
    np.testing.assert_array_equal(p, datasets.perturb_digits(x, seed=3))
    assert not np.array_equal(p, datasets.perturb_digits(x, seed=4))
    # no perturbed image equals any original: a lookup table keyed on exact pixels finds nothing
    originals = {row.tobytes() for row in x.reshape(len(x), -1)}
    assert not any(row.tobytes() in originals for row in p.reshape(len(p), -1))
    assert np.abs(p - x).mean() > 0.02
    with pytest.raises(ValueError, match="expects images"):
        datasets.perturb_digits(np.zeros(5), seed=0)
