"""A student's own workspace: ``python -m autograder fetch`` and ``make lab``.

Students work on copies, never on the release: ``fetch ASSIGNMENT [DIR]`` copies
``assignments/ASSIGNMENT`` into ``DIR/ASSIGNMENT`` (default ``work/mine/ASSIGNMENT``; git ignores ``work/``), so saving,
Validate and a later ``git pull`` never touch a tracked file; an existing copy is never
overwritten. ``lab`` (``make lab``) fetches whatever is not fetched yet and starts JupyterLab there
with the student's view of nbgrader: Validate in the toolbar (answered by :mod:`autograder.lab`,
the grader's own path), and none of the panels that need nbgrader's exchange or an instructor's
course directory — Assignment List, Course List, Formgrader, Create Assignment — which a course
run from a checkout does not have (on a JupyterHub, :mod:`autograder.hub` gives students the
Assignment List, with the exchange it needs). The environment's ``bin/`` goes first on PATH, so nothing
depends on the virtual environment being activated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .course import Course, UsageError

STUDENT_HIDDEN = ["@jupyter/nbgrader:assignment-list", "@jupyter/nbgrader:course-list",
                  "@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                  "@jupyter/nbgrader:menu"]
STUDENT_SERVER_OFF = ["nbgrader.server_extensions.assignment_list", "nbgrader.server_extensions.course_list",
                      "nbgrader.server_extensions.formgrader"]


def mine(course: Course) -> Path:
    return course.work / "mine"


def fetch(course: Course, assignment: str, into: Path | None = None) -> Path:
    """Copy the release of ``assignment`` into ``into/ASSIGNMENT`` (default ``work/mine/ASSIGNMENT``);
    return that folder. ``into`` is the parent, so every assignment fetched there gets its own folder."""
    course.require(assignment)
    src = course.assignments / assignment
    if not src.is_dir():
        raise UsageError(f"{assignment} is not released yet (no {src}); run `python -m autograder release`")
    parent = (into or mine(course)).expanduser().resolve()
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"{parent} is a file; give a folder to fetch {assignment} into")
    dest = parent / assignment
    if dest == src.resolve() or src.resolve() in dest.parents or dest in src.resolve().parents:
        raise UsageError(f"{dest} is inside the release; fetch into a folder of your own")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} already exists: your copy of {assignment} there is kept as it is. "
                         "Open it, or fetch into another folder")
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.rglob("*")):
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        elif path.is_file():
            shutil.copyfile(path, target)  # not the release's modes or times: the copy is the student's
    return dest


def student_config(course: Course) -> Path:
    """A Jupyter config folder with the student's view of nbgrader (see the module's docstring)."""
    config = course.work / "jupyter" / "student"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {name: True for name in STUDENT_HIDDEN}}, indent=1))
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {name: False for name in STUDENT_SERVER_OFF}}}, indent=1))
    return config


def lab_command(root: Path, port: int | None = None, browser: bool = True, token: str | None = None) -> list[str]:
    args = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}"]
    if port:
        args.append(f"--ServerApp.port={port}")
    if not browser:
        args.append("--no-browser")
    if token is not None:
        args.append(f"--IdentityProvider.token={token}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--ServerApp.allow_root=True")  # a container's root shell; Jupyter refuses it otherwise
    return args


def with_bin(env) -> dict[str, str]:
    """``env`` with this environment's ``bin/`` first on PATH (nbgrader shells out to ``alembic``)."""
    bin_dir = os.path.dirname(sys.executable)
    return {**env, "PATH": bin_dir + os.pathsep + env.get("PATH", "")}


def lab_environment(course: Course) -> dict[str, str]:
    return {**with_bin(os.environ), "JUPYTER_CONFIG_DIR": str(student_config(course))}


def prepare_lab(course: Course) -> tuple[Path, list[Path]]:
    """Fetch every released assignment not fetched yet; the workspace and what was fetched now."""
    root = mine(course)
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for assignment in course.assignment_ids():
        if (course.assignments / assignment).is_dir() and not (root / assignment).exists():
            fetched.append(fetch(course, assignment))
    return root, fetched


def lab(course: Course, port: int | None = None, browser: bool = True) -> int:
    root, fetched = prepare_lab(course)
    for path in fetched:
        print(f"fetched {path}")
    print(f"JupyterLab on {root} (your copies; Validate is in each notebook's toolbar; Ctrl-C stops it)", flush=True)
    return subprocess.call(lab_command(root, port, browser), cwd=root, env=lab_environment(course))
