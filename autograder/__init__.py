"""ConvNets, from pixels to ResNet: the course's Python package.

Modules, one job each:

* :mod:`autograder.kernel` — everything that also runs inside a student's kernel (the protocol's
  two ends, the student-facing checks, data, tolerances, probes, provided layers, recipes):
  the trust boundary, as a folder. Its modules answer to their old names too
  (``from autograder import checks``, ``autograder.layers.conv_forward``).
* :mod:`autograder.kernel.checks` — what test cells call (assert_close, rel_error, gradient checks).
* :mod:`autograder.reference` — PyTorch reference operations, on the GPU when present.
* :mod:`autograder.kernel.datasets` — offline data (MNIST-5k, sample photos) and full-dataset loaders.
* :mod:`autograder.suites` — each assignment's visible and hidden test suites.
* :mod:`autograder.catalogue` — realistic wrong answers per exercise, to prove the tests catch them.
* :mod:`autograder.grading` — release, autograde a class, feedback, export, the demo.
* :mod:`autograder.cli` — ``python -m autograder …``.
"""

import sys as _sys
from importlib import import_module as _import_module
from importlib.machinery import ModuleSpec as _ModuleSpec

__version__ = "0.1.0"

# The modules of autograder.kernel, also importable by the names they had at the top of the package
# (notebooks, lectures and students' habits: ``from autograder.checks import assert_close``).
_KERNEL_NAMES = frozenset({"protocol", "agent", "ops", "student", "seed", "datasets", "checks", "tolerances",
                            "probes", "layers", "recipes", "specnet"})


class _KernelAlias:
    """A meta-path finder and loader: ``autograder.NAME`` is ``autograder.kernel.NAME``, the same
    module object under both names in ``sys.modules`` (its ``__spec__`` stays the real one)."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        parent, _, name = fullname.rpartition(".")
        if parent != __name__ or name not in _KERNEL_NAMES:
            return None
        return _ModuleSpec(fullname, _KernelAlias)

    @staticmethod
    def create_module(spec):
        module = _import_module(f"{__name__}.kernel.{spec.name.rpartition('.')[2]}")
        spec.loader_state = module.__spec__  # module_from_spec overwrites __spec__: put it back after
        return module

    @staticmethod
    def exec_module(module):
        alias = module.__spec__
        if alias.loader is _KernelAlias:
            module.__spec__ = alias.loader_state


if not any(finder is _KernelAlias for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _KernelAlias)
