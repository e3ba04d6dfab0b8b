"""Where a student's kernel runs: its own scratch folder, resource caps, the assignment's Python
path, and (where the OS allows) a bubblewrap sandbox with no network and nothing of the course.

The kernel command is ``python -I -m autograder.grading.sandbox LIMITS -- ARGV...``: this module's
``main`` sets the resource limits (address space, CPU seconds, processes, file size, no core dumps),
ignores SIGXFSZ so that an over-large write fails with an error instead of killing the kernel, and
execs ARGV, which is ``bwrap … python -S -m ipykernel_launcher`` when bubblewrap works here and the
bare kernel otherwise. The kernel's ``PYTHONPATH`` is its :class:`KernelSite`: the packages the
assignment may use and a cut-down copy of the course's package. Inside bubblewrap the kernel has
its own user, PID, network, IPC and UTS namespaces, no capabilities, and sees read-only: the system
folders, the Python installation, the virtual environment's interpreter and only the kernel site's
packages; read-write: only its scratch folder. The solutions, the course's references and grader,
the gradebook, the output folder and other students' submissions are not there.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

BUBBLEWRAP = "bubblewrap"
RLIMITS_ONLY = "rlimits only"


@dataclass(frozen=True)
class Limits:
    """Per-kernel caps. ``memory_mb`` is address space, which counts shared libraries too (torch
    maps about 1.5 GiB before any tensor exists)."""

    memory_mb: int = 6144
    cpu_s: int = 1800
    processes: int = 64
    file_mb: int = 64
    output_kb: int = 1024  # what one cell may print before it is stopped

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@functools.lru_cache(maxsize=None)
def isolation() -> str:
    """BUBBLEWRAP when ``bwrap`` can make the namespaces here, else RLIMITS_ONLY."""
    if os.environ.get("AUTOGRADER_SANDBOX") == "off" or not sys.platform.startswith("linux"):
        return RLIMITS_ONLY
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return RLIMITS_ONLY
    try:
        probe = subprocess.run([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                               capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return RLIMITS_ONLY
    return BUBBLEWRAP if probe.returncode == 0 else RLIMITS_ONLY


def isolation_note() -> str:
    """One line for reports: what the kernels can and cannot reach."""
    if isolation() == BUBBLEWRAP:
        return ("kernels ran in bubblewrap: own scratch folder, no network, no course files, "
                "memory/CPU/process/file-size caps")
    return ("kernels ran with memory, CPU and file-size caps (no process cap) in a scratch folder, but without "
            "bubblewrap: the network and the grading user's files were reachable (install bubblewrap)")


class KernelSite:
    """The Python path of an assignment's kernels: a private folder of links to the virtual
    environment's packages — without torch, scipy and scikit-learn for a NumPy-only assignment
    (:data:`autograder.profiles.NOT_NUMPY`) — and a copy of only those modules of the course's
    package that the assignment may use (:mod:`autograder.profiles`): never the references, the
    models, the suites or the grader. A forbidden package is replaced by a stub whose import fails
    with a sentence saying why. The kernel runs ``python -S`` with this folder as ``PYTHONPATH``;
    inside bubblewrap only these packages are mounted, so nothing else can be put back on the path.
    """

    def __init__(self, assignment: str | None):
        from .. import profiles

        self.assignment = assignment
        self.profile = profiles.profile(assignment) if assignment else profiles.profile("")
        self.path = Path(tempfile.mkdtemp(prefix="ag-site-"))
        self.path.chmod(0o755)
        atexit.register(shutil.rmtree, self.path, True)
        self.targets: list[str] = []  # real paths the links point to (what bubblewrap must mount)
        self.fallback = False  # links could not be made: the environment's folders go on the path
        self.sites = sorted({os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"],
                                                            sysconfig.get_paths()["platlib"]) if os.path.isdir(p)})
        blocked = set(profiles.NOT_NUMPY) if self.profile.numpy_only else set()
        for site in self.sites:
            for entry in sorted(os.listdir(site)):
                top = entry.split("-")[0].split(".")[0].lower()
                if top in blocked or _course_install(entry) or (self.path / entry).exists():
                    continue
                real = os.path.realpath(os.path.join(site, entry))
                if not self.fallback:
                    try:
                        (self.path / entry).symlink_to(real)
                    except OSError:  # Windows without the right to make links: see `python_path`
                        self.fallback = True
                self.targets.append(real)
        for name in sorted(blocked):
            if name in ("scikit_learn", "scikit_image", "jaxlib", "nvidia"):
                continue
            stub = self.path / name
            stub.mkdir(exist_ok=True)
            (stub / "__init__.py").write_text(
                f"raise ModuleNotFoundError({_stub_message(name, assignment)!r}, name={name!r})\n")
        package = Path(__file__).resolve().parents[1]
        mine = self.path / "autograder"
        mine.mkdir()
        for module in (*profiles.KERNEL_CORE, *self.profile.kernel_modules):
            shutil.copy2(package / f"{module}.py", mine / f"{module}.py")
        for other in sorted(package.iterdir()):  # the rest of the package: stubs that say why it is not here
            name = other.stem if other.suffix == ".py" else other.name
            if name.startswith("_") or (mine / f"{name}.py").exists() or not (
                    other.suffix == ".py" or (other / "__init__.py").is_file()):
                continue
            # no name= here: ``from autograder import x`` would swallow the error and say less
            text = f"raise ModuleNotFoundError({_course_module_message(name)!r})\n"
            if other.suffix == ".py":
                (mine / f"{name}.py").write_text(text)
            else:
                (mine / name).mkdir()
                (mine / name / "__init__.py").write_text(text)
        if "datasets" in self.profile.kernel_modules:  # scikit-learn's photos, without scikit-learn
            from ..datasets import _photos_folder

            photos = os.path.realpath(_photos_folder())
            try:
                (mine / "photos").symlink_to(photos)
            except OSError:
                shutil.copytree(photos, mine / "photos")
            self.targets.append(photos)

    def python_path(self) -> str:
        """The kernel's PYTHONPATH: this folder; where links cannot be made (Windows), this folder
        and then the environment's own package folders — the stubs here still come first, so a
        forbidden package's import still fails, though the environment is no boundary there."""
        return os.pathsep.join([str(self.path), *(self.sites if self.fallback else [])])

    def mounts(self) -> list[str]:
        """bubblewrap arguments: each linked package at its real path, and the folder itself."""
        out = []
        for site in self.sites:
            out += ["--tmpfs", site]  # hide whatever else lives there (a venv inside a bound root)
        for real in self.targets:
            out += ["--ro-bind", real, real]
        for site in self.sites:
            out += ["--remount-ro", site]
        return out + ["--ro-bind", str(self.path), str(self.path)]


def _course_install(entry: str) -> bool:
    """The course package's own install (an editable finder, its .pth, its metadata)."""
    low = entry.lower()
    return (low.startswith(("__editable__", "convnets_autograder", "autograder", "_distutils_hack"))
            or low == "distutils-precedence.pth")


def _course_module_message(name: str) -> str:
    return (f"autograder.{name} is not available where your code is graded: the course's references, "
            "models, checks' answers and grader stay outside the kernel. Write the exercise yourself.")


def _stub_message(name: str, assignment: str | None) -> str:
    return (f"{name} is not available here: {assignment or 'this assignment'} is NumPy only, so its "
            f"kernels have numpy (and the standard library) but not {name}. Write the exercise with numpy.")


def _readonly_mounts(site: KernelSite) -> list[str]:
    """bubblewrap arguments showing the kernel what it needs, read-only: system folders, the Python
    installation, the virtual environment's interpreter, and the kernel site (which hides every
    package the assignment may not use). Symlinked roots (/bin -> usr/bin) stay links."""
    roots = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc/alternatives", "/etc/ssl",
             "/etc/localtime", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/passwd",
             "/etc/group", "/etc/nsswitch.conf", "/etc/fonts", "/etc/matplotlibrc",
             sys.base_prefix, sys.prefix]
    binds, links = [], []
    for root in roots:
        if not os.path.lexists(root):
            continue
        if os.path.islink(root) and root.count("/") == 1:  # /bin -> usr/bin: recreate the link
            links += ["--symlink", os.readlink(root), root]
            continue
        real = os.path.realpath(root)
        if os.path.exists(real) and not any(real == b or real.startswith(b + "/") for b in binds):
            binds = [b for b in binds if not b.startswith(real + "/")] + [real]
    mounts = []
    for real in binds:
        mounts += ["--ro-bind", real, real]
    return mounts + links + site.mounts()


def kernel_argv(scratch: Path, limits: Limits, site: KernelSite) -> list[str]:
    """The kernelspec argv for a kernel confined to ``scratch`` ({connection_file} left for Jupyter)."""
    python = sys.executable
    kernel = [python, "-S", "-m", "ipykernel_launcher", "-f", "{connection_file}",
              "--HistoryManager.enabled=False", "--IPKernelApp.trio_loop=False"]
    boxed = isolation() == BUBBLEWRAP
    if sys.platform == "win32":  # no rlimits, no exec: the bare kernel (Validate on a student's laptop)
        return kernel
    wrapper = [python, "-I", "-m", "autograder.grading.sandbox", limits.as_json(), "nproc" if boxed else "-", "--"]
    if not boxed:
        return [*wrapper, *kernel]
    scratch = str(scratch.resolve())
    bwrap = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    bwrap += _readonly_mounts(site)
    bwrap += ["--bind", scratch, scratch, "--chdir", scratch, "--setenv", "HOME", scratch,
              "--setenv", "TMPDIR", "/tmp", "--unsetenv", "JPY_PARENT_PID", "--"]
    return [*wrapper, *bwrap, *kernel]


def kernel_env(scratch: Path, site: KernelSite) -> dict[str, str]:
    """The whole environment of a grading kernel: nothing inherited but PATH and the locale."""
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "PYTHONPATH": site.python_path(),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(scratch / ".matplotlib"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "JUPYTER_PLATFORM_DIRS": "1",
        "JUPYTER_CONFIG_DIR": str(scratch / ".jupyter"),
        "JUPYTER_DATA_DIR": str(scratch / ".jupyter-data"),
        "IPYTHONDIR": str(scratch / ".ipython"),
    }
    return env


def apply_limits(limits: Limits, processes: bool) -> None:
    """Set this process's resource limits (inherited by what it execs and forks). The process cap
    only when the kernel gets its own user namespace: outside one, RLIMIT_NPROC counts every
    process of the grading user."""
    import resource

    def cap(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):  # macOS refuses RLIMIT_AS; a missing cap must not stop the kernel
            pass

    mib = 1024 * 1024
    _, data = resource.getrlimit(resource.RLIMIT_DATA)  # the judge's own cap is not the kernel's
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    cap(resource.RLIMIT_AS, limits.memory_mb * mib)
    cap(resource.RLIMIT_CPU, limits.cpu_s)
    cap(resource.RLIMIT_FSIZE, limits.file_mb * mib)
    cap(resource.RLIMIT_CORE, 0)
    if os.geteuid() == 0:  # root ignores RLIMIT_NPROC; a pids cgroup caps the kernel's tasks instead
        _join_pids_cgroup(limits.processes)
    elif processes:  # counted per user namespace: the kernel's own threads and children
        cap(resource.RLIMIT_NPROC, limits.processes)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the cap raises OSError(EFBIG)


_PIDS_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")


def _pids_root() -> Path | None:
    for root in map(Path, _PIDS_ROOTS):
        v1 = root.name == "pids" and (root / "cgroup.procs").exists()
        if v1 or "pids" in _read(root / "cgroup.subtree_control").split():
            return root
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _join_pids_cgroup(limit: int) -> bool:
    """Move this process into a fresh pids cgroup capped at ``limit`` tasks (root only; best effort)."""
    root = _pids_root()
    if root is None:
        return False
    group = root / f"autograder-kernel-{os.getpid()}"
    try:
        group.mkdir(exist_ok=True)
        (group / "pids.max").write_text(str(limit))
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError:
        return False
    return True


def sweep_cgroups() -> None:
    """Remove the empty pids cgroups that finished kernels leave behind."""
    root = _pids_root()
    if root is None:
        return
    for group in root.glob("autograder-kernel-*"):
        if not _read(group / "cgroup.procs").strip():
            try:
                group.rmdir()
            except OSError:
                pass


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: python -m autograder.grading.sandbox LIMITS_JSON nproc|- -- COMMAND...")
    apply_limits(Limits(**json.loads(argv[0])), processes=argv[1] == "nproc")
    os.execv(argv[3], argv[3:])


if __name__ == "__main__":
    main(sys.argv[1:])
