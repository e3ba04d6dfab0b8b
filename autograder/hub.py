"""The course on a JupyterHub: ``python -m autograder hub`` (``make hub``), run as root.

One command sets up and starts a hub for the course on this machine:

* **JupyterHub** (this environment's) with **configurable-http-proxy** (npm), logging in the
  machine's own Unix accounts through PAM (the ``login`` service: a user's own password); a course
  that signs in with its university's accounts swaps the authenticator (OAuth, LDAP) in the
  written ``jupyterhub_config.py`` and keeps the rest. Only the named instructors and students
  (names, or ``@group`` for a Unix group's members) may log in; nobody is a hub admin, so no one
  can open another user's server.
* **Single-user servers** run this environment's ``jupyterhub-singleuser`` as each user, in their
  home, opening JupyterLab: the course is installed once, here, for everyone. Each role gets a
  Jupyter config folder of its own (``JUPYTER_CONFIG_PATH``), written under ``--dir``:
  ``student/`` — nbgrader's exchange and course id; the Assignment List (fetch, submit, fetch
  feedback) and Validate in the toolbar, which :mod:`autograder.lab` answers with the grader's own
  path; formgrader, Create Assignment and the Course List hidden. ``instructor/`` — the same
  exchange, and nbgrader's course directory ``~/convnets`` (``submitted/`` after
  ``nbgrader collect``, the course secret ``course_secret`` that ``grade`` makes on first use)
  with the course's ``solutions/`` as its source and ``assignments/`` as its release folder,
  formgrader and every nbgrader panel shown, formgrader's math served from the packaged MathJax.
  Its ``nbgrader_config.py`` (also written into each instructor's ``~/convnets``, for nbgrader run
  there from any shell) carries the grading road's routes (:mod:`autograder.grading.road`): the
  grader's record is ``~/convnets/grades`` (``grade --out``), whose gradebook, graded notebooks and
  feedback pages are nbgrader's, so formgrader's Autograde and ``nbgrader autograde`` grade
  through the judge and the sandbox, and Generate/Release Feedback hand out the grader's pages.
* **nbgrader's exchange** in a shared folder (``/srv/nbgrader/exchange`` by default), mode 1777 as
  nbgrader documents, its course folder made by the (first) instructor with nbgrader's own modes:
  ``outbound/`` readable by all, ``inbound/`` writable but not listable (a submission's folder name
  carries a random string), ``feedback/`` not listable (a page's name is a hash of the submission's
  own secret). With the homes private (the hub makes a student's home 0700 if others could enter
  it) and the grader's folders in the instructor's home, one student can read nothing of another's.
* The hub's own state (its database, cookie secret, the proxy's pid) in ``--dir``/``private``,
  readable by root only.

Where the environment's Python sits in a folder other users cannot enter (a root-only
``/root/.pyenv``, say), the hub runs in a mount namespace of its own in which that folder is
replaced by an empty one holding only what the course needs (the rest of it stays hidden); a real
deployment installs Python where every user can read it.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import socket
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .course import Course, UsageError

COURSE_ID = "convnets"
HUB_DIR = Path("/srv/convnets-hub")
EXCHANGE = Path("/srv/nbgrader/exchange")
COURSE_FOLDER = "convnets"  # the instructor's nbgrader course directory, in their home
CHP_VERSION = "5.3.0"  # configurable-http-proxy, from npm (.ci/run installs it)

STUDENT_HIDDEN = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                  "@jupyter/nbgrader:course-list"]
QUIET = ["@jupyterlab/apputils-extension:announcements"]  # no "news?" pop-up on a course's hub
STUDENT_SERVER_OFF = ["nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list"]

# nbgrader's own modes for the course's folders in the exchange (release_assignment.py, release_feedback.py)
EXCHANGE_MODES = {"": 0o755, "outbound": 0o755, "inbound": 0o2733, "feedback": 0o711}


@dataclass
class People:
    instructors: list[str]
    students: list[str] = field(default_factory=list)  # user names
    groups: list[str] = field(default_factory=list)  # Unix groups whose members are students

    @classmethod
    def parse(cls, instructors: list[str], students: list[str]) -> "People":
        if not instructors:
            raise UsageError("name at least one instructor (--instructor NAME): a Unix account on this machine")
        people = cls([], [], [])
        for name in instructors:
            if name.startswith("@"):
                raise UsageError(f"--instructor takes user names, not groups ({name})")
            people.instructors.append(_user(name).pw_name)
        for name in students:
            if name.startswith("@"):
                try:
                    grp.getgrnam(name[1:])
                except KeyError:
                    raise UsageError(f"no Unix group {name[1:]!r} on this machine (--student {name})") from None
                people.groups.append(name[1:])
            else:
                people.students.append(_user(name).pw_name)
        both = set(people.instructors) & set(people.students)
        if both:
            raise UsageError(f"{', '.join(sorted(both))}: both instructor and student; give each account one role")
        return people

    def student_accounts(self) -> list[str]:
        names = set(self.students)
        for group in self.groups:
            entry = grp.getgrnam(group)
            names |= set(entry.gr_mem)
            names |= {p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid}
        return sorted(names - set(self.instructors))


def _user(name: str) -> pwd.struct_passwd:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise UsageError(f"no Unix account {name!r} on this machine; create it first (useradd -m {name})") from None
    if entry.pw_uid == 0:
        raise UsageError(f"{name} is root; the hub runs each user's server as that user, so use an ordinary account")
    return entry


# ---------------------------------------------------------------------------------------------
# What the hub writes
# ---------------------------------------------------------------------------------------------

STUDENT_NBGRADER = '''"""nbgrader for the course's students on this hub (written by `autograder hub`)."""
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
'''

INSTRUCTOR_NBGRADER = '''"""nbgrader for the course's instructors on this hub (written by `autograder hub`,
rewritten at each start; the same file is the instructor's ~/{folder}/nbgrader_config.py).

The course directory is ~/{folder} (submitted/ after `nbgrader collect`, the course secret); the sources
and releases are the course's own folders, so `nbgrader release_assignment ASSIGNMENT` hands out
assignments/ASSIGNMENT as it is in the course. The grader's record is ~/{folder}/{grades}
(`autograder grade ASSIGNMENT ~/{folder}/submitted --out ~/{folder}/{grades}`): its gradebook is
formgrader's, its graded notebooks are the ones formgrader shows and grades by hand, its pages the
feedback nbgrader releases.
"""
import os

c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Exchange.root = {exchange!r}
c.CourseDirectory.root = os.path.expanduser("~/{folder}")
c.CourseDirectory.source_directory = {source!r}
c.CourseDirectory.release_directory = {release!r}
c.CourseDirectory.autograded_directory = {autograded!r}
c.CourseDirectory.feedback_directory = {feedback!r}
c.CourseDirectory.db_url = "sqlite:///" + os.path.expanduser("~/{folder}/{grades}/gradebook.db")  # grade's own

# One grading road (autograder/grading/road.py): formgrader's Autograde buttons and `nbgrader autograde`
# grade through the judge and the sandbox (never nbgrader's Execute: no student code on this server,
# no hidden test in a student's kernel); Generate Feedback writes the grader's sanitised pages (with
# the hand grading); Release Feedback hands each student their own through the exchange.
{route}c.Judge.out = os.path.expanduser("~/{folder}/{grades}")
# Release records the course's release in the gradebook first (it was made by `autograder release`,
# not by nbgrader's generate_assignment): formgrader's Autograde looks for it there.
c.ExchangeFactory.release_assignment = "autograder.grading.road.ReleaseAssignment"
'''
GRADES = "grades"  # the grader's record (grade --out) inside the instructor's course folder

HUB_CONFIG = '''"""JupyterHub for the course (written by `autograder hub`; rewritten at each start).

Started with:  {command}
"""
import os

c = get_config()  # noqa: F821

c.JupyterHub.bind_url = {bind_url!r}
c.JupyterHub.hub_bind_url = {hub_bind_url!r}
c.ConfigurableHTTPProxy.api_url = {proxy_api!r}
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = {db_url!r}
c.JupyterHub.cookie_secret_file = {cookie_secret!r}
c.ConfigurableHTTPProxy.pid_file = {proxy_pid!r}

# Who may log in: the machine's own accounts, by their own password (PAM). For a real course,
# swap in the university's sign-in (e.g. oauthenticator's GenericOAuthenticator) and keep the rest.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {allowed!r}
c.LocalAuthenticator.allowed_groups = {groups!r}
c.Authenticator.admin_users = set()  # no one may open another user's server
c.LocalAuthenticator.create_system_users = False

# Each user's server: this environment's jupyterhub-singleuser, JupyterLab, in their home.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.environment = {{"PATH": {path!r}, "AUTOGRADER_COURSE": {course!r}}}

INSTRUCTORS = {instructors!r}
ROLE_CONFIG = {{"instructor": {instructor_config!r}, "student": {student_config!r}}}
INSTRUCTOR_DATA = {instructor_data!r}


def by_role(spawner):
    """Instructors get nbgrader's course directory and formgrader; students the Assignment List."""
    role = "instructor" if spawner.user.name in INSTRUCTORS else "student"
    env = {{**spawner.environment, "JUPYTER_CONFIG_PATH": ROLE_CONFIG[role]}}
    if role == "instructor":
        env["JUPYTER_PATH"] = INSTRUCTOR_DATA
        # the course secret (the hidden tests' seeds): the instructor's own, made on first use (0600)
        env["AUTOGRADER_SECRET_FILE"] = os.path.expanduser(f"~{{spawner.user.name}}/{folder}/course_secret")
    spawner.environment = env


c.Spawner.pre_spawn_hook = by_role
'''


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip or "127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command() -> str:
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise UsageError(f"configurable-http-proxy is not installed; run: npm install -g configurable-http-proxy@{CHP_VERSION}")
    return found


def singleuser_command() -> Path:
    path = Path(sys.executable).parent / "jupyterhub-singleuser"
    if not path.exists():
        raise UsageError(f"JupyterHub is not installed in this environment ({sys.prefix}); run: "
                         f"{sys.executable} -m pip install -r requirements.txt")
    return path


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def own_folder(path: Path, owner: str | None, mode: int) -> Path:
    """Make ``path`` (if missing) a folder of ``owner`` (root when None) with ``mode``, never through
    a symbolic link, and refuse one that belongs to anyone else: root changes only what it made or
    what is already the owner's."""
    account = pwd.getpwnam(owner) if owner else pwd.getpwuid(0)
    try:
        path.mkdir()
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise UsageError(f"{path} is not a folder (a symbolic link or a file); remove it and start again") from None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, account.pw_uid):
            raise UsageError(f"{path} belongs to {_name(st.st_uid)}, not {account.pw_name}; remove it and start again")
        os.fchown(fd, account.pw_uid, account.pw_gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def prepare_exchange(exchange: Path, owner: str) -> Path:
    """nbgrader's exchange at ``exchange`` (1777) with the course's folder owned by ``owner``
    and nbgrader's own modes on it; returns the course's folder."""
    exchange.parent.mkdir(parents=True, exist_ok=True)
    own_folder(exchange, None, 0o1777)
    course = exchange / COURSE_ID
    for name, mode in EXCHANGE_MODES.items():
        own_folder(course / name if name else course, owner, mode)
    return course


def private_homes(accounts: list[str]) -> list[str]:
    """Make each account's home 0700 where others could enter it; the homes changed."""
    changed = []
    for name in accounts:
        home = Path(pwd.getpwnam(name).pw_dir)
        if home.is_dir() and not home.is_symlink() and home.stat().st_mode & 0o077:
            own_folder(home, name, 0o700)
            changed.append(str(home))
    return changed


def instructor_folder(name: str) -> Path:
    """The instructor's nbgrader course directory, ``~/convnets``, theirs alone (0700)."""
    return own_folder(Path(pwd.getpwnam(name).pw_dir) / COURSE_FOLDER, name, 0o700)


def instructor_config(course: Course, exchange: Path) -> str:
    """The instructors' ``nbgrader_config.py``: the exchange, the course folder, and the grading
    road's routes (:func:`autograder.grading.road.route_config`) with the grader's record in
    ``~/convnets/grades``, where nbgrader's autograded notebooks and feedback are too."""
    from .grading import road

    grades = GRADES
    return INSTRUCTOR_NBGRADER.format(
        course_id=COURSE_ID, exchange=str(exchange), folder=COURSE_FOLDER, grades=grades,
        source=str(course.solutions), release=str(course.assignments),
        autograded=f"{grades}/nbgrader/autograded", feedback=f"{grades}/feedback",
        route="".join(line for line in road.route_config("~", course.root).splitlines(keepends=True)
                      if not line.startswith("c.Judge.out ")))  # each instructor's own, below


def hub_mathjax_macro() -> str:
    """formgrader's MathJax on the hub: the packaged copy the instructor's own server serves, under
    that server's prefix (``/user/NAME``, read from the page's address: one file for every
    instructor); without the prefix the page asks the hub itself, MathJax is missing and formgrader's
    Manual Grading page never loads its grades. A page rendered with a URL of its own (the grader's
    feedback pages, :func:`autograder.grading.feedback.page`) keeps nbconvert's plain tag."""
    from .grading.formgrader import MATHJAX_MACRO

    plain = '<script src="{{url}}"> </script>'
    prefixed = ("{%- if url.startswith('/static/') %}"  # formgrader's pages; a page given its own URL keeps it
                "<script>(function () { var p = location.pathname, i = p.indexOf('/formgrader/');"
                " document.write('<script src=\"' + (i >= 0 ? p.slice(0, i) : '') + '{{url}}\"><' + '/script>'); })();"
                "</script>{%- else %}" + plain + "{%- endif %}")
    assert plain in MATHJAX_MACRO
    return MATHJAX_MACRO.replace(plain, prefixed)


def write_owned(folder: Path, name: str, text: str, owner: str, mode: int = 0o644) -> Path:
    """Write ``folder/name`` as ``owner``'s file, never through a symbolic link (whatever was at that
    name is replaced): root writing into a folder another account owns."""
    account = pwd.getpwnam(owner)
    try:
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        raise UsageError(f"{folder} is not a folder (a symbolic link or a file); remove it and start again") from None
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=dirfd)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dirfd)
        with os.fdopen(fd, "w") as fh:
            os.fchown(fh.fileno(), account.pw_uid, account.pw_gid)
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
    finally:
        os.close(dirfd)
    return folder / name


@dataclass
class Hub:
    config: Path  # jupyterhub_config.py
    private: Path  # the folder jupyterhub runs in (root only)
    url: str
    exposed: list[tuple[Path, str]]  # (a folder other users cannot enter, the entry they need in it)


def prepare(course: Course, people: People, hub_dir: Path = HUB_DIR, exchange: Path = EXCHANGE,
            port: int = 8000, ip: str = "") -> Hub:
    """Write the hub's configuration, the exchange and the instructors' course folders."""
    if os.geteuid() != 0:
        raise UsageError("the hub starts each user's server as that user: run it as root (sudo make hub ...)")
    if not course.assignments.is_dir() or not any(course.assignments.iterdir()):
        raise UsageError(f"{course.assignments} holds no release; run `python -m autograder release` first")
    proxy, singleuser = proxy_command(), singleuser_command()
    hub_dir = hub_dir.resolve()
    hub_dir.mkdir(parents=True, exist_ok=True)
    hub_dir.chmod(0o755)  # the role folders are read by every user's server
    private = hub_dir / "private"
    private.mkdir(exist_ok=True)
    private.chmod(0o700)
    exchange = exchange.resolve()
    prepare_exchange(exchange, people.instructors[0])
    for name in people.instructors:
        instructor_folder(name)
    private_homes([*people.instructors, *people.student_accounts()])

    student, instructor = hub_dir / "student", hub_dir / "instructor"
    _write(student / "nbgrader_config.py", STUDENT_NBGRADER.format(course_id=COURSE_ID, exchange=str(exchange)))
    _write(student / "jupyter_server_config.json", json.dumps(
        {"ServerApp": {"jpserver_extensions": {name: False for name in STUDENT_SERVER_OFF}}}, indent=1))
    _write(student / "labconfig" / "page_config.json", json.dumps(
        {"disabledExtensions": {name: True for name in STUDENT_HIDDEN + QUIET}}, indent=1))
    _write(instructor / "labconfig" / "page_config.json", json.dumps(
        {"disabledExtensions": {name: True for name in QUIET}}, indent=1))
    config_text = instructor_config(course, exchange)
    _write(instructor / "nbgrader_config.py", config_text)
    for name in people.instructors:  # nbgrader run in the course folder itself (any shell) takes the same road
        folder = instructor_folder(name)
        own_folder(folder / GRADES, name, 0o700)  # the gradebook's folder: formgrader opens it before any grade
        write_owned(folder, "nbgrader_config.py", config_text, name)
    data = hub_dir / "instructor-data"
    _write(data / "nbconvert" / "templates" / "base" / "mathjax.html.j2", hub_mathjax_macro())

    bin_dir = str(Path(sys.executable).parent)
    host = ip or "127.0.0.1"
    url = f"http://{ip or 'localhost'}:{port}"
    config = hub_dir / "jupyterhub_config.py"
    _write(config, HUB_CONFIG.format(
        command=f"{sys.executable} -m autograder hub ...", bind_url=f"http://{ip}:{port}",
        hub_bind_url=f"http://{host}:{_free_port(host)}", proxy_api=f"http://127.0.0.1:{_free_port('127.0.0.1')}",
        proxy=proxy, db_url=f"sqlite:///{private / 'jupyterhub.sqlite'}",
        cookie_secret=str(private / "jupyterhub_cookie_secret"), proxy_pid=str(private / "proxy.pid"),
        allowed={*people.instructors, *people.students}, groups=set(people.groups),
        singleuser=str(singleuser), path=os.pathsep.join([bin_dir, "/usr/local/bin", "/usr/bin", "/bin"]),
        course=str(course.root), instructors=set(people.instructors), instructor_config=str(instructor),
        student_config=str(student), instructor_data=str(data), folder=COURSE_FOLDER))
    needed = [Path(sys.executable).resolve(), Path(sys.prefix), singleuser, course.root, Path(proxy).resolve()]
    return Hub(config, private, url, blocked(needed))


def blocked(paths: list[Path]) -> list[tuple[Path, str]]:
    """The folders other users cannot enter on the way to ``paths``, each with the entry of it that
    leads there (``(/root, ".pyenv")`` for ``/root/.pyenv/…/python3``)."""
    found = []
    for path in paths:
        real = Path(os.path.realpath(path))
        parts = real.parts
        upto = len(parts) + (1 if real.is_dir() else 0)
        closed = [Path(*parts[:i]) for i in range(1, upto) if not os.stat(Path(*parts[:i])).st_mode & stat.S_IXOTH]
        if not closed:
            continue
        if len(closed) > 1 or closed[0] == Path("/") or closed[0] == real:
            raise UsageError(f"{closed[-1]} is closed to other users and holds what every user's server needs "
                             f"({real}); install Python and the course where every user can read them")
        entry = (closed[0], parts[len(closed[0].parts)])
        if entry not in found:
            found.append(entry)
    return found


def namespace_argv(exposed: list[tuple[Path, str]], argv: list[str]) -> list[str]:
    """``argv`` run in a mount namespace of its own where each closed folder of ``exposed`` is an
    empty, open one (a tmpfs, 0755) holding only the entry every user needs, bound from the real
    folder; the rest of the folder stays out of sight, for root too."""
    import shlex

    lines = ["set -e", 'stage=$(mktemp -d)']
    by_folder: dict[Path, list[str]] = {}
    for folder, entry in exposed:
        by_folder.setdefault(folder, []).append(entry)
    k = 0
    for folder, entries in by_folder.items():
        staged = []
        for entry in entries:
            src, tmp = shlex.quote(str(folder / entry)), f'"$stage/{k}"'
            kind = "mkdir" if (folder / entry).is_dir() else "touch"
            lines += [f"{kind} {tmp}", f"mount --bind {src} {tmp}"]
            staged.append((src, tmp, kind))
            k += 1
        lines.append(f"mount -t tmpfs -o mode=755 convnets-hub {shlex.quote(str(folder))}")
        for src, tmp, kind in staged:
            lines += [f"{kind} {src}", f"mount --bind {tmp} {src}", f"umount {tmp}", f"rm -rf {tmp}"]
    lines += ['rmdir "$stage"', 'exec "$@"']
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(lines), "autograder-hub", *argv]


def serve(course: Course, people: People, hub_dir: Path = HUB_DIR, exchange: Path = EXCHANGE,
          port: int = 8000, ip: str = "") -> int:
    """Prepare the hub and become it (``jupyterhub -f …``, in the foreground; Ctrl-C stops it and
    every user's server)."""
    hub = prepare(course, people, hub_dir, exchange, port, ip)
    students = people.student_accounts()
    print(f"JupyterHub for {course.root.name} at {hub.url} (Ctrl-C stops it)\n"
          f"  instructors: {', '.join(people.instructors)} (formgrader; course folder ~/{COURSE_FOLDER})\n"
          f"  students: {', '.join(students) or 'none yet'}"
          f"{' and members of ' + ', '.join('@' + g for g in people.groups) if people.groups else ''}\n"
          f"  exchange: {exchange}\n  config: {hub.config}", flush=True)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(hub.config)]
    if hub.exposed:
        if not shutil.which("unshare"):
            folders = ", ".join(str(f) for f, _ in hub.exposed)
            raise UsageError(f"{folders}: closed to other users, and no `unshare` to open what the servers need; "
                             "install Python and the course where every user can read them")
        print("  (in a mount namespace of its own: " + ", ".join(f"{f} shows only {e}" for f, e in hub.exposed)
              + ", so that every user's server can run this environment's Python)", flush=True)
        argv = namespace_argv(hub.exposed, argv)
    from .workspace import with_bin

    os.chdir(hub.private)
    env = {k: v for k, v in with_bin(os.environ).items() if not k.startswith("AUTOGRADER_SECRET")}
    os.execvpe(argv[0], argv, env)
