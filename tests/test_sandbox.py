"""The executor and its sandbox, cell by cell: what a hostile cell does and what it ends as.

Each test runs a few cells in a real sandboxed kernel (bubblewrap where it works here, rlimits
otherwise) and asserts the exact status and reason, and that the cells after it still run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from autograder.grading.execute import DIED, ERROR, OK, OUTPUT, TIMEOUT, run_cells
from autograder.grading.sandbox import BUBBLEWRAP, KernelSite, Limits, isolation

from .support import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

boxed = pytest.mark.skipif(isolation() != BUBBLEWRAP, reason="bubblewrap cannot make namespaces here")

LIMITS = Limits(memory_mb=2048, output_kb=64, file_mb=8, processes=32)


def run(tmp_path: Path, *cells: str, timeout: float = 5.0, limits: Limits = LIMITS):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return run_cells([(i, code, True) for i, code in enumerate(cells)], scratch, limits, timeout, budget=120)


def test_cells_share_a_kernel(tmp_path):
    runs = run(tmp_path, "x = 41", "x += 1\nprint(x)")
    assert [r.status for r in runs] == [OK, OK]
    assert runs[1].outputs[0]["text"] == "42\n"


def test_an_error_is_reported_and_the_next_cell_runs(tmp_path):
    runs = run(tmp_path, "1 / 0", "print('after')")
    assert runs[0].status == ERROR and runs[0].reason == "ZeroDivisionError: division by zero"
    assert runs[1].status == OK


def test_a_loop_that_catches_the_interrupt_loses_its_kernel_not_the_notebook(tmp_path):
    loop = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except KeyboardInterrupt:\n        pass"
    runs = run(tmp_path, "x = 7", loop, "print(x)", timeout=2)
    assert runs[1].status == TIMEOUT
    assert runs[1].reason.startswith("timed out: the cell ran past the 2 s limit per cell and ignored the interrupt")
    assert runs[2].status == OK and runs[2].outputs[0]["text"] == "7\n"  # x defined again in the new kernel


def test_a_plain_infinite_loop_is_interrupted_and_the_kernel_kept(tmp_path):
    runs = run(tmp_path, "x = 1", "while True:\n    pass", "print(x)", timeout=2)
    assert runs[1].status == TIMEOUT and "ignored the interrupt" not in runs[1].reason
    assert runs[2].status == OK


def test_os_exit_kills_the_kernel_and_the_notebook_goes_on(tmp_path):
    runs = run(tmp_path, "x = 5", "import os\nos._exit(3)", "print(x)")
    assert runs[1].status == DIED
    assert runs[1].reason == "the kernel exited with status 3 (os._exit, exit() or a crash in compiled code)"
    assert runs[2].status == OK and runs[2].outputs[0]["text"] == "5\n"


def test_a_segfault(tmp_path):
    runs = run(tmp_path, "import numpy as np\nnp.lib.stride_tricks.as_strided(np.zeros(1), shape=(1 << 30,), "
                         "strides=(1 << 20,)).sum()", "print('alive')")
    assert runs[0].status == DIED and "segmentation fault (SIGSEGV)" in runs[0].reason
    assert runs[1].status == OK


def test_sys_exit_is_an_error_not_a_death(tmp_path):
    runs = run(tmp_path, "import sys\nsys.exit(1)", "print('alive')")
    assert runs[0].status == ERROR and runs[0].reason == "SystemExit: 1"
    assert runs[1].status == OK


def test_memory_cap(tmp_path):
    runs = run(tmp_path, "import numpy as np\na = np.ones(1 << 33)", "print('alive')")
    assert runs[0].status == ERROR
    assert runs[0].reason == "MemoryError: the kernel reached its memory cap (2048 MiB)"
    assert runs[1].status == OK


def test_output_cap(tmp_path):
    runs = run(tmp_path, "while True:\n    print('x' * 1000)", "print('alive')")
    assert runs[0].status == OUTPUT
    assert runs[0].reason.startswith("output cap: the cell printed more than 64 KiB")
    assert sum(len(o.get("text", "")) for o in runs[0].outputs) <= 64 * 1024 + 1000
    assert runs[1].status == OK


def test_file_size_cap(tmp_path):
    runs = run(tmp_path, "open('big', 'wb').write(b'0' * (20 << 20))", "print('alive')")
    assert runs[0].status == ERROR and runs[0].reason.startswith("a file grew past the 8 MiB cap")
    assert runs[1].status == OK


@boxed
def test_fork_storm_is_capped(tmp_path):
    storm = ("import os, time\nfor i in range(200):\n    if os.fork() == 0:\n        time.sleep(30)\n"
             "        os._exit(0)")
    runs = run(tmp_path, storm, "print('alive')")
    assert runs[0].status == ERROR and runs[0].reason.startswith("the process cap (32) stopped a fork")
    assert runs[1].status == OK


@boxed
def test_no_network(tmp_path):
    runs = run(tmp_path, "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=3)")
    assert runs[0].status == ERROR and "Network is unreachable" in runs[0].reason


@boxed
def test_the_course_and_other_folders_are_not_visible(tmp_path):
    secret = tmp_path / "other-student.txt"
    secret.write_text("answers")
    probe = (f"import os\nprint(os.path.exists({str(ROOT / 'solutions')!r}), os.path.exists({str(secret)!r}), "
             f"os.path.exists({str(ROOT / 'autograder')!r}), os.getcwd() == {str(tmp_path / 'scratch')!r})")
    runs = run(tmp_path, probe)
    assert runs[0].status == OK
    assert runs[0].outputs[0]["text"] == "False False False True\n"  # not even the course's package


def run_for(assignment: str, tmp_path: Path, *cells: str):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return run_cells([(i, code, True) for i, code in enumerate(cells)], scratch, LIMITS, 60, budget=120,
                     site=KernelSite(assignment))


def test_a_numpy_only_kernel_cannot_import_torch_scipy_or_the_references(tmp_path):
    """Is a NumPy-only assignment's Python path without torch, scipy, scikit-learn and the course's
    references, while numpy, matplotlib and the course's data stay importable?"""
    runs = run_for("a1_images_and_convolution", tmp_path, "import torch", "import scipy.signal",
                   "import sklearn", "import autograder.reference", "from autograder import suites",
                   "import numpy, matplotlib.pyplot\nfrom autograder import datasets\n"
                   "print(datasets.sample_photo('china').shape, datasets.mnist_5k()[0].shape)")
    assert runs[0].status == ERROR and "torch is not available here: a1_images_and_convolution is NumPy only" \
        in runs[0].reason
    assert runs[1].status == ERROR and "scipy is not available here" in runs[1].reason
    assert runs[2].status == ERROR and "sklearn is not available here" in runs[2].reason
    assert runs[3].status == ERROR and "autograder.reference is not available where your code is graded" \
        in runs[3].reason
    assert runs[4].status == ERROR
    assert runs[5].status == OK, runs[5].reason
    assert runs[5].outputs[0]["text"] == "(427, 640, 3) (5000, 28, 28)\n"


@boxed
def test_a_numpy_only_kernel_cannot_put_torch_back_on_its_path(tmp_path):
    """Can code in a NumPy-only kernel reach torch by adding the environment's folders to sys.path?"""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    runs = run_for("a2_conv_layer", tmp_path, f"import sys, os\nsys.path.insert(0, {site!r})\n"
                   f"print(os.path.exists(os.path.join({site!r}, 'torch')))\nimport torch")
    assert runs[0].status == ERROR and runs[0].outputs[0]["text"] == "False\n"


def test_a_pytorch_assignment_has_torch_but_not_the_reference_models(tmp_path):
    runs = run_for("a5_resnet", tmp_path, "import torch\nprint(torch.zeros(2).sum().item())",
                   "from autograder import models", "import autograder.suites.a5_resnet")
    assert runs[0].status == OK and runs[0].outputs[0]["text"] == "0.0\n"
    assert runs[1].status == ERROR and runs[2].status == ERROR


@boxed
def test_the_python_installation_is_read_only(tmp_path):
    runs = run(tmp_path, "import numpy, os\nopen(os.path.join(os.path.dirname(numpy.__file__), 'x.py'), 'w')")
    assert runs[0].status == ERROR and "Read-only file system" in runs[0].reason


def test_a_module_the_notebook_writes_cannot_stand_in_for_an_installed_one(tmp_path):
    """Is the kernel's working folder off its path, so that a file a cell writes there is never
    what an import loads (restrictions.py reads imports as the environment's modules)?"""
    runs = run(tmp_path, "open('colorsys.py', 'w').write('SHADOW = 1')\nopen('my_helpers.py', 'w').write('X = 2')",
               "import colorsys\nprint(hasattr(colorsys, 'SHADOW'))", "import my_helpers", timeout=20)
    assert runs[1].status == OK and runs[1].outputs[0]["text"] == "False\n"
    assert runs[2].status == ERROR and "No module named 'my_helpers'" in runs[2].reason


def test_kernel_environment_is_scrubbed(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET", "s3cret")
    runs = run(tmp_path, "import os\nprint('GRADER_SECRET' in os.environ, os.environ['PYTHONHASHSEED'])")
    assert runs[0].outputs[0]["text"] == "False 0\n"
