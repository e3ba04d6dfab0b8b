"""Running nbgrader's own command-line apps in child processes.

Each call is a fresh ``python -m nbgrader …`` with every course-directory setting passed as a flag,
a private Jupyter config directory (so a user's global ``nbgrader_config.py`` cannot change a
grade) and a kernelspec that pins the kernel to this interpreter. A child that outlives its time
limit is killed with its whole process group, kernel included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    returncode: int
    output: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def errors(self) -> list[str]:
        """nbgrader's [ERROR] lines, without the traceback noise."""
        lines = [line.split("]", 1)[-1].strip() for line in self.output.splitlines() if "[ERROR]" in line]
        return [line for line in lines if line and not line.startswith("Traceback")]


def jupyter_home(base: Path) -> dict[str, str]:
    """Environment variables giving nbgrader and its kernels a private, predictable Jupyter setup."""
    config = base / "jupyter-config"
    data = base / "jupyter-data"
    kernel_dir = data / "kernels" / "python3"
    kernel_dir.mkdir(parents=True, exist_ok=True)
    config.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    spec_path = kernel_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not spec_path.exists() or spec_path.read_text() != text:
        spec_path.write_text(text)
    bin_dir = os.path.dirname(sys.executable)  # nbgrader shells out to `alembic` when it makes a gradebook
    return {
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_PATH": str(data),  # searched before the user's and the system's kernels
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


def flags(settings: dict[str, object]) -> list[str]:
    """``{"CourseDirectory.root": "/x"}`` -> ``["--CourseDirectory.root=/x"]``."""
    return [f"--{key}={value}" for key, value in settings.items()]


def nbgrader(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float | None = None,
             log: Path | None = None) -> Run:
    """Run ``python -m nbgrader ARGS`` in ``cwd``; return its exit status and combined output."""
    full_env = {**os.environ, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        output, _ = proc.communicate()
    finally:
        _kill_group(proc)  # a kernel left behind by a crashed nbgrader goes too
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ nbgrader {' '.join(args)}\n{output}")
    return Run(proc.returncode if proc.returncode is not None else -9, output, timed_out)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
