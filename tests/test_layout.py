"""The trust boundary is a folder: autograder/kernel/ holds exactly the modules a kernel gets (and a
student can rewrite), nothing else of the package is copied into a kernel, and the old names
(``from autograder import checks``) are the same modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import autograder
from autograder import profiles

PACKAGE = Path(autograder.__file__).resolve().parent
KERNEL = PACKAGE / "kernel"
STUB = "raise ModuleNotFoundError("


def kernel_modules() -> set[str]:
    return {p.stem for p in KERNEL.glob("*.py")} - {"__init__"}


def test_the_kernel_folder_is_what_the_profiles_copy():
    allowed = set(profiles.KERNEL_CORE).union(*(p.kernel_modules for p in profiles.PROFILES.values()),
                                              profiles.profile("").kernel_modules) - {"__init__"}
    assert kernel_modules() == allowed
    assert not (set(profiles.KERNEL_CORE) - {"__init__"}) & {p.stem for p in PACKAGE.glob("*.py")}
    assert autograder._KERNEL_NAMES == kernel_modules()  # the old names the alias answers to


def test_the_kernel_modules_import_only_each_other():
    """Nothing of the judge's side runs in a kernel: a kernel module importing one would need it there."""
    for path in sorted(KERNEL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, (path.name, ast.unparse(node))
                names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                assert set(names) <= kernel_modules(), (path.name, ast.unparse(node))
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert not any(m.split(".")[0] == "autograder" for m in modules), (path.name, ast.unparse(node))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")
@pytest.mark.parametrize("assignment", [*profiles.PROFILES, None])
def test_no_module_outside_the_kernel_folder_is_copied_into_a_kernel(assignment):
    from autograder.grading.sandbox import KernelSite

    site = KernelSite(assignment).path / "autograder"
    profile = profiles.profile(assignment or "")
    copied = set()
    for path in sorted(site.rglob("*.py")):
        relative = path.relative_to(site)
        text = path.read_text()
        if text.startswith(STUB):
            continue
        copied.add(relative.as_posix())
        assert text == (PACKAGE / relative).read_text(), relative
    assert copied == {"__init__.py", *(f"kernel/{m}.py" for m in (*profiles.KERNEL_CORE, *profile.kernel_modules))}
    # every module the kernel does not get, kernel-side or the judge's, is a stub that says why
    for name in kernel_modules() - set(profile.kernel_modules) - set(profiles.KERNEL_CORE):
        assert (site / "kernel" / f"{name}.py").read_text().startswith(STUB)
    for name in ("reference", "models", "secret", "profiles", "cli"):
        assert (site / f"{name}.py").read_text().startswith(STUB)
    for name in ("grading", "suites", "catalogue"):
        assert (site / name / "__init__.py").read_text().startswith(STUB)


def test_the_old_names_are_the_kernel_modules():
    """``from autograder import checks`` (a notebook's, a lecture's, a student's habit) is
    ``autograder.kernel.checks``: one module object, whose spec names where it lives."""
    code = """
import importlib, sys
from autograder import checks
import autograder.kernel.checks
from autograder.layers import conv_forward
import autograder.datasets as datasets
from autograder.kernel import layers
assert checks is autograder.kernel.checks is sys.modules["autograder.checks"], checks
assert checks.__spec__.name == "autograder.kernel.checks", checks.__spec__
assert checks.__name__ == "autograder.kernel.checks"
assert conv_forward is layers.conv_forward and layers is sys.modules["autograder.layers"]
assert datasets is sys.modules["autograder.kernel.datasets"] and datasets.__spec__.name == "autograder.kernel.datasets"
assert importlib.reload(checks) is checks and checks.__spec__.name == "autograder.kernel.checks"
try:
    import autograder.no_such_module
except ModuleNotFoundError as exc:
    assert exc.name == "autograder.no_such_module"
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
