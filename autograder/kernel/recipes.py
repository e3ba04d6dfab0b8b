"""The grader's training recipes, run where the student's code lives.

A training exercise is graded on what the student's code *learns*: the judge asks the kernel to
run one of these recipes — the grader's own loop, with the grader's data, order and schedule,
calling the student's model and update rule — and to hand back the trained weights as data. The
judge then measures the accuracy itself, with its own reference architecture, on held-out digits
that never enter the kernel. A notebook's own test cell runs the same recipe in-process.

:class:`Stopped` ends a run early with a message for the student (a diverging loss, a run that
would not finish in time).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np


class Stopped(Exception):
    """The recipe stopped the run; the message says why and what to look at."""


def _dims(shape: Any) -> str:
    return str(tuple(int(s) for s in shape))


def _keep_pace(label: str, done: int, steps: int, started: float, time_limit: float | None,
               checkpoints: tuple[int, ...], hint: str) -> None:
    """Stop a run whose first ``done`` steps (at the checkpoints) project past ``time_limit`` seconds of
    CPU time (``started``: :func:`time.process_time` at the start). Only early words for a run that would
    fail anyway: the judge limits the run by the CPU time it measures from outside the kernel."""
    elapsed = time.process_time() - started
    if time_limit and done in checkpoints and elapsed / done * steps > time_limit:
        raise Stopped(f"{label}: too slow: {done} training steps took {elapsed:.1f} s of CPU, so the {steps} "
                      f"steps would take about {elapsed / done * steps:.0f} s (limit {time_limit:.0f} s of CPU).\n"
                      f"  Hint: {hint}")


# ---------------------------------------------------------------------------------------------
# a3: the NumPy SmallConvNet, trained by SGD with the student's momentum update
# ---------------------------------------------------------------------------------------------

def small_convnet(SmallConvNet: Any, sgd_momentum: Any, X: np.ndarray, y: np.ndarray, *, net: dict,
                  params: dict, epochs: int, batch_size: int, learning_rate: float, momentum: float,
                  seed: int, time_limit: float | None) -> dict:
    """Build ``SmallConvNet(**net)``, start it from ``params``, and train it for ``epochs`` passes
    over (X, y) in minibatches drawn without replacement from ``seed``, the learning rate decaying
    linearly to 0, every parameter updated by the student's ``sgd_momentum``.
    Returns dict(params=the trained weights, losses=the loss of every step)."""
    model = SmallConvNet(weight_scale=1e-2, reg=0.0, seed=seed % 2**31, **net)
    for name, value in params.items():
        model.params[name] = np.array(value, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        losses = _train_small_convnet(model, sgd_momentum, X, y, epochs, batch_size, learning_rate, momentum,
                                      seed, time_limit)
    return {"params": {k: np.asarray(v) for k, v in model.params.items()}, "losses": losses}


def _train_small_convnet(model: Any, sgd_momentum: Any, X: np.ndarray, y: np.ndarray, epochs: int,
                         batch_size: int, learning_rate: float, momentum: float, seed: int,
                         time_limit: float | None) -> list[float]:
    g = np.random.default_rng(seed)
    velocity = {k: np.zeros_like(v) for k, v in model.params.items()}
    steps = epochs * math.ceil(len(X) / batch_size)
    label = f"SmallConvNet.loss(X ({batch_size}, 1, 28, 28), y) during training"
    losses: list[float] = []
    start = time.process_time()
    for _ in range(epochs):
        order = g.permutation(len(X))
        for s in range(0, len(X), batch_size):
            idx = order[s:s + batch_size]
            result = model.loss(X[idx], y[idx])
            if not isinstance(result, tuple) or len(result) != 2:
                raise Stopped(f"{label}: expected (loss, grads), got {type(result).__name__}.\n"
                              "  Hint: with labels y, loss returns loss, grads.")
            loss, grads = result
            loss = float(loss)
            if not math.isfinite(loss):
                raise Stopped(f"{label}: the loss became {loss} at step {len(losses) + 1} of {steps} "
                              f"(learning rate {learning_rate:g}, momentum {momentum:g}).\n  Hint: a "
                              "correct network does not diverge with this recipe; check the exercises "
                              "above, then sgd_momentum's signs.")
            lr = learning_rate * (1 - len(losses) / steps)
            for name in list(model.params):
                out = sgd_momentum(model.params[name], grads[name], velocity[name], lr, momentum)
                if not isinstance(out, tuple) or len(out) != 2:
                    raise Stopped(f"sgd_momentum(w {_dims(np.shape(model.params[name]))}, dw, v, ...) for "
                                  f"params['{name}']: expected (next_w, next_v).\n  Hint: return next_w, next_v.")
                model.params[name], velocity[name] = out
            losses.append(loss)
            _keep_pace(label, len(losses), steps, start, time_limit, (10, 40),
                       "vectorise over the batch and channel axes; in pooling, loop only over the output "
                       "positions (i, j).")
    return losses


# ---------------------------------------------------------------------------------------------
# a5: the student's CifarResNet, trained by SGD with momentum on perturbed digits
# ---------------------------------------------------------------------------------------------

def cifar_resnet(CifarResNet: Any, net: dict, start: dict, X_epochs: list, y: Any, orders: list, *,
                 batch_size: int, lr: float, momentum: float, time_limit: float | None) -> dict:
    """Build ``CifarResNet(**net)``, load the grader's ``start`` weights, and train it with SGD with
    momentum, the learning rate decaying linearly to 0: one epoch per tensor of ``X_epochs`` (the
    grader's perturbed copies of the training digits), minibatches in the grader's ``orders``.
    Returns dict(state=the trained state_dict, losses=the loss of every step)."""
    import torch
    import torch.nn.functional as F

    model = CifarResNet(**net)
    model = model.to(torch.float32)
    model.load_state_dict(start)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    steps = sum(math.ceil(len(X) / batch_size) for X in X_epochs)
    label = "CifarResNet(" + ", ".join(f"{k}={v!r}" for k, v in net.items()) + ")"
    losses: list[float] = []
    started = time.process_time()
    model.train()
    for X, order in zip(X_epochs, orders):
        for s in range(0, len(X), batch_size):
            idx = order[s:s + batch_size]
            step = f"{label}(x of shape {_dims(X[idx].shape)}) during training, step {len(losses) + 1}"
            try:
                loss = F.cross_entropy(model(X[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
            except Exception as exc:
                raise Stopped(f"{step} raised {type(exc).__name__}: {exc}") from exc
            if not math.isfinite(loss.item()):
                raise Stopped(f"{step}: the loss became {loss.item()}.\n  Hint: a correct network does not "
                              "diverge with this recipe; check the outputs and gradients above.")
            for group in opt.param_groups:
                group["lr"] = lr * (1 - len(losses) / steps)
            opt.step()
            losses.append(loss.item())
            _keep_pace(f"{label} during training", len(losses), steps, started, time_limit, (5, 20),
                       "no Python loops over pixels or examples in forward; use the nn layers on the whole batch.")
    return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "losses": losses}


RECIPES = {"small_convnet": small_convnet, "cifar_resnet": cifar_resnet}
