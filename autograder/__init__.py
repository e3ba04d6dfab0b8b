"""ConvNets, from pixels to ResNet: the course's Python package.

Modules, one job each:

* :mod:`autograder.checks` — what test cells call (assert_close, rel_error, gradient checks).
* :mod:`autograder.reference` — PyTorch reference operations, on the GPU when present.
* :mod:`autograder.datasets` — offline data (MNIST-5k, sample photos) and full-dataset loaders.
* :mod:`autograder.suites` — each assignment's visible and hidden test suites.
* :mod:`autograder.catalogue` — realistic wrong answers per exercise, to prove the tests catch them.
* :mod:`autograder.grading` — release, autograde a class, feedback, export, the demo.
* :mod:`autograder.cli` — ``python -m autograder …``.
"""

__version__ = "0.1.0"
