"""Realistic wrong answers for a6_visualisation."""

from . import WrongAnswer as W

DEPENDS: dict[str, tuple[str, ...]] = {}  # no exercise calls another's function

_S = ("saliency_map",)
_O = ("occlusion_map",)
_G = ("grad_cam",)
_V = ("class_visualisation",)
_F = ("fgsm",)
_I = ("integrated_gradients",)
_P = ("pgd",)
_R = ("randomisation_check",)

_PICK = "scores.gather(1, y.view(-1, 1)).sum()"
_OCCLUDE = "occluded[:, :, i * stride:i * stride + patch, j * stride:j * stride + patch] = fill"
_CAM = "return F.relu((alpha * A).sum(dim=1)).detach()"
_IG_RETURN = "return (total / steps * (x - baseline)).detach()"
_IG_LOOP = """    total = torch.zeros_like(x)
    for k in range(steps):
        point = (baseline + (k + 0.5) / steps * (x - baseline)).detach().requires_grad_(True)
        scores = model(point)
        (grad,) = torch.autograd.grad(scores.gather(1, y.view(-1, 1)).sum(), point)
        total += grad
"""
_IG_BATCHED_WRONG = """    N = x.shape[0]
    alphas = (torch.arange(steps, dtype=x.dtype) + 0.5) / steps
    path = (baseline[None] + alphas.view(-1, 1, 1, 1, 1) * (x - baseline)[None]).reshape(steps * N, *x.shape[1:])
    path = path.detach().requires_grad_(True)
    scores = model(path)
    (grad,) = torch.autograd.grad(scores.gather(1, y.repeat(steps).view(-1, 1)).sum(), path)
    total = grad.reshape(N, steps, *x.shape[1:]).sum(dim=1)
"""
_PGD_STEP = """        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
"""
_RANDOMISE = "p.copy_(0.1 * torch.randn(p.shape, generator=generator))"

WRONG_ANSWERS = [
    # 1. saliency
    W("saliency_map", "absolute value forgotten",
      (("x.grad.abs().amax(dim=1)", "x.grad.amax(dim=1)"),), _S),
    W("saliency_map", "mean over the channels instead of the maximum",
      (("x.grad.abs().amax(dim=1)", "x.grad.abs().mean(dim=1)"),), _S),
    W("saliency_map", "gradient of the loss instead of the class score",
      ((f"{_PICK}.backward()", "F.cross_entropy(scores, y).backward()"),), _S),
    W("saliency_map", "gradient of the predicted class, not y's",
      ((f"{_PICK}.backward()", "scores.gather(1, scores.argmax(1, keepdim=True)).sum().backward()"),), _S),
    W("saliency_map", "gradient of every class's score summed",
      ((f"{_PICK}.backward()", "scores.sum().backward()"),), _S),
    W("saliency_map", "model left in training mode", (("    model.eval()\n", ""),), _S),
    W("saliency_map", "map normalised to a maximum of 1",
      (("return x.grad.abs().amax(dim=1)",
        "sal = x.grad.abs().amax(dim=1)\n    return sal / sal.amax(dim=(1, 2), keepdim=True)"),), _S),
    # 2. occlusion
    W("occlusion_map", "one position short (range(0, H - patch, stride))",
      (("(H - patch) // stride + 1, (W - patch) // stride + 1",
        "len(range(0, H - patch, stride)), len(range(0, W - patch, stride))"),), _O),
    W("occlusion_map", "patch placed at (i, j) instead of (i * stride, j * stride)",
      ((_OCCLUDE, "occluded[:, :, i:i + patch, j:j + patch] = fill"),), _O),
    W("occlusion_map", "occludes x itself instead of a copy",
      (("occluded = x.clone()", "occluded = x"),), _O),
    W("occlusion_map", "only the first channel occluded",
      ((_OCCLUDE, "occluded[:, 0, i * stride:i * stride + patch, j * stride:j * stride + patch] = fill"),), _O),
    W("occlusion_map", "raw scores instead of softmax probabilities",
      (("base = F.softmax(model(x), dim=1).gather", "base = model(x).gather"),
       ("p = F.softmax(model(occluded), dim=1).gather", "p = model(occluded).gather")), _O),
    W("occlusion_map", "occluded minus original (sign flipped)", (("= base - p", "= p - base"),), _O),
    W("occlusion_map", "fill ignored (always 0)", ((_OCCLUDE, _OCCLUDE.replace("= fill", "= 0")),), _O),
    # 3. Grad-CAM
    W("grad_cam", "ReLU gradient gate forgotten (no ReLU on the weighted sum)",
      ((_CAM, "return (alpha * A).sum(dim=1).detach()"),), _G),
    W("grad_cam", "weights summed over the map instead of averaged",
      (("grad.mean(dim=(2, 3), keepdim=True)", "grad.sum(dim=(2, 3), keepdim=True)"),), _G),
    W("grad_cam", "weights averaged over the channels instead of the map",
      (("grad.mean(dim=(2, 3), keepdim=True)", "grad.mean(dim=1, keepdim=True)"),), _G),
    W("grad_cam", "gradient of the loss instead of the class score",
      ((f"torch.autograd.grad({_PICK}, A)", "torch.autograd.grad(F.cross_entropy(scores, y), A)"),), _G),
    W("grad_cam", "the layer's input instead of its output",
      (('seen.setdefault("A", output)', 'seen.setdefault("A", inputs[0])'),), _G),
    W("grad_cam", "upsampled to the input's size",
      ((_CAM, "cam = F.relu((alpha * A).sum(dim=1))\n    return F.interpolate(cam[:, None], size=x.shape[2:], "
              "mode=\"bilinear\")[:, 0].detach()"),), _G),
    W("grad_cam", "ReLU on the layer's output A instead of on the weighted sum",
      ((_CAM, "return F.relu((alpha * F.relu(A)).sum(dim=1)).detach()"),), _G),
    W("grad_cam", "map normalised to [0, 1]",
      ((_CAM, "cam = F.relu((alpha * A).sum(dim=1))\n    low = cam.amin(dim=(1, 2), keepdim=True)\n"
              "    return ((cam - low) / (cam.amax(dim=(1, 2), keepdim=True) - low)).detach()"),), _G),
    W("grad_cam", "hook never removed", (("        handle.remove()\n", "        pass\n"),), _G),
    W("grad_cam", "model left in training mode", (("    model.eval()\n", ""),), _G),
    # 4. class visualisation
    W("class_visualisation", "gradient descent instead of ascent", (("x += lr * grad", "x -= lr * grad"),), _V),
    W("class_visualisation", "pixels never clamped to [0, 1]", (("            x.clamp_(0, 1)\n", ""),), _V),
    W("class_visualisation", "the score of class 0 whatever y is", (("[0, y]", "[0, 0]"),), _V),
    W("class_visualisation", "L2 penalty with the wrong sign",
      (("- l2 * (x * x).sum()", "+ l2 * (x * x).sum()"),), _V),
    W("class_visualisation", "softmax probability climbed instead of the score",
      (("model(torch.roll(x, (dy, dx), dims=(2, 3)))[0, y]",
        "F.softmax(model(torch.roll(x, (dy, dx), dims=(2, 3))), dim=1)[0, y]"),), _V),
    W("class_visualisation", "L2 penalty left out", ((" - l2 * (x * x).sum()", ""),), _V),
    W("class_visualisation", "x rebound by x = x + lr * grad (no longer a leaf that requires grad)",
      (("x += lr * grad", "x = x + lr * grad"),), _V),
    W("class_visualisation", "no model.eval() (the caller's BatchNorm statistics change)",
      (("    model.eval()\n", ""),), _V),
    W("class_visualisation", "default seed changed", (("seed=0):", "seed=42):"),), _V),
    # 5. FGSM
    W("fgsm", "sign of the step (down the loss)",
      (("x + eps * x.grad.sign()", "x - eps * x.grad.sign()"),), _F),
    W("fgsm", "no clamp to [0, 1]", ((".clamp(0, 1).detach()", ".detach()"),), _F),
    W("fgsm", "the gradient instead of its sign", (("x.grad.sign()", "x.grad"),), _F),
    W("fgsm", "gradient of the class score instead of the loss",
      (("F.cross_entropy(model(x), y).backward()", "model(x).gather(1, y.view(-1, 1)).sum().backward()"),), _F),
    W("fgsm", "model left in training mode", (("    model.eval()\n", ""),), _F),
    # 6. integrated gradients
    W("integrated_gradients", "the average gradient not multiplied by (x - baseline)",
      ((_IG_RETURN, "return (total / steps).detach()"),), _I),
    W("integrated_gradients", "softmax probability instead of the logit",
      (("scores = model(point)", "scores = F.softmax(model(point), dim=1)"),), _I),
    W("integrated_gradients", "gradient of the loss instead of the class score",
      (("scores.gather(1, y.view(-1, 1)).sum(), point)", "F.cross_entropy(scores, y), point)"),), _I),
    W("integrated_gradients", "left Riemann sum (k / steps: the path's end never visited)",
      (("(k + 0.5) / steps", "k / steps"),), _I),
    W("integrated_gradients", "both ends of the path among the points (k / (steps - 1))",
      (("(k + 0.5) / steps", "k / (steps - 1)"),), _I),
    W("integrated_gradients", "absolute value of the attributions",
      ((_IG_RETURN, "return (total / steps * (x - baseline)).abs().detach()"),), _I),
    W("integrated_gradients", "baseline ignored (always zeros)",
      (("    if baseline is None:\n        baseline = torch.zeros_like(x)\n",
        "    baseline = torch.zeros_like(x)\n"),), _I),
    W("integrated_gradients", "path points of the batch reshaped as (N, steps) though stacked as (steps, N)",
      ((_IG_LOOP, _IG_BATCHED_WRONG),), _I),
    W("integrated_gradients", "model left in training mode", (("    model.eval()\n", ""),), _I),
    # 7. PGD
    W("pgd", "no projection onto the eps-ball (drifts past eps)",
      (("x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)", "x_adv = x_adv.clamp(0, 1)"),), _P),
    W("pgd", "projected onto the ball around the current iterate instead of the original x",
      ((_PGD_STEP, """        previous = x_adv.detach()
        x_adv = previous + alpha * grad.sign()
        x_adv = torch.min(torch.max(x_adv, previous - eps), previous + eps).clamp(0, 1)
"""),), _P),
    W("pgd", "clamped to [0, 1] only at the end",
      (("x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)",
        "x_adv = torch.min(torch.max(x_adv, x - eps), x + eps)"),
       ("    return x_adv.detach()", "    return x_adv.clamp(0, 1).detach()")), _P),
    W("pgd", "gradient descent instead of ascent (down the loss)",
      (("x_adv.detach() + alpha * grad.sign()", "x_adv.detach() - alpha * grad.sign()"),), _P),
    W("pgd", "the raw gradient instead of its sign", (("alpha * grad.sign()", "alpha * grad"),), _P),
    W("pgd", "projected before the step instead of after",
      ((_PGD_STEP, """        x_adv = torch.min(torch.max(x_adv.detach(), x - eps), x + eps).clamp(0, 1)
        x_adv = x_adv + alpha * grad.sign()
"""),), _P),
    W("pgd", "the class score ascended instead of the loss",
      (("        loss = F.cross_entropy(model(x_adv), y)\n",
        "        loss = model(x_adv).gather(1, y.view(-1, 1)).sum()\n"),), _P),
    W("pgd", "model left in training mode", (("    model.eval()\n", ""),), _P),
    # 8. model-randomisation sanity check
    W("randomisation_check", "randomises the caller's model in place (no copy)",
      (("net = copy.deepcopy(model).eval()", "net = model.eval()"),), _R),
    W("randomisation_check", "independent instead of cascading randomisation",
      (("    for name in layers:\n", "    for name in layers:\n        net = copy.deepcopy(model).eval()\n"),), _R),
    W("randomisation_check", "Pearson's correlation instead of Spearman's",
      (("ra = a.argsort(dim=1).argsort(dim=1).double()", "ra = a.double()"),
       ("rb = b.argsort(dim=1).argsort(dim=1).double()", "rb = b.double()")), _R),
    W("randomisation_check", "absolute maps correlated instead of the signed ones explain returns",
      (("original = explain(net, x, y).detach().flatten(1)", "original = explain(net, x, y).detach().flatten(1).abs()"),
       ("maps = explain(net, x, y).detach().flatten(1)", "maps = explain(net, x, y).detach().flatten(1).abs()")), _R),
    W("randomisation_check", "the explanation not re-computed (the original model explained each time)",
      (("maps = explain(net, x, y)", "maps = explain(copy.deepcopy(model).eval(), x, y)"),), _R),
    W("randomisation_check", "layers randomised bottom up (reversed)",
      (("    for name in layers:\n", "    for name in reversed(layers):\n"),), _R),
    W("randomisation_check", "generator ignored (the global random generator)",
      ((_RANDOMISE, "p.copy_(0.1 * torch.randn(p.shape))"),), _R),
    W("randomisation_check", "row 0 (the original against itself) left out",
      (("rows = [spearman(original, original)]", "rows = []"),), _R),
    W("randomisation_check", "correlations averaged over the batch",
      (("return torch.stack(rows)", "return torch.stack(rows).mean(dim=1)"),), _R),
    W("randomisation_check", "the copy left in training mode",
      (("net = copy.deepcopy(model).eval()", "net = copy.deepcopy(model)"),), _R),
]

# The wrong answer the demo's "buggy" student hands in.
DEMO_BUG = "fgsm: sign of the step (down the loss)"
