"""The course on a real JupyterHub, as its users meet it (issue 19: the hub, students on it, one
grading road, hand grading kept).

One hub for the module, started by the course's own command (``python -m autograder hub``) as
root, with four Unix accounts the fixture creates and removes: an instructor and three students,
who log in through the hub's login page with their own passwords (PAM). The workflow is a chain
of module fixtures, each a stage a later stage builds on:

1. ``released``: the instructor presses formgrader's Release for a1 (Manage Assignments): the hub's
   route records it in the gradebook, nbgrader's exchange hands it out.
2. ``submitted``: in Chromium, each of two students logs in, fetches a1 in the Assignment List,
   opens it, types an answer into the ``layout`` cell — ada the solution, bo a catalogued bug —,
   saves, presses Validate in the toolbar (the grader's path: ada's layout passes, bo's fails with
   the check's message) and submits from the Assignment List; ada had already submitted the blank
   copy once, so her resubmission is what must be graded. ``hostile``: eve, from her terminal,
   submits the blank copy with a cell that tries to write into the instructor's home and to read
   the course secret, the gradebook and the hidden tests.
3. ``graded``: in formgrader, the instructor presses Collect, then each student's Autograde: the
   hub's course folder routes nbgrader's Autograde to the judge (no nbgrader kernel runs).
4. ``hand_graded``: in formgrader's Manual Grading, the instructor gives bo's ``layout`` 1 point of 2
   by hand and writes a comment; ``regraded``: the instructor regrades from the command line
   (``autograder grade --regrade`` on the course's gradebook).
5. ``feedback``: formgrader's Generate Feedback and Release Feedback, then each student presses
   *Fetch Feedback* in the Assignment List and opens their own page.

Isolation is checked as each student's own account: no listing of the exchange's inbound or
feedback folders, no entry into another student's home, feedback or server, or the instructor's
course folder.

Screenshots of the steps go to ``work/hub-screenshots/`` (``AUTOGRADER_SCREENSHOTS=docs/img``
writes the README's copies). Needs root, Debian's Chromium, ``configurable-http-proxy`` (npm) and
JupyterHub; ``.ci/run`` installs them. The hub, its users and its folders are removed afterwards.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .classes import Assignment
from .support import ROOT, free_port
from .test_browser import CHROMIUM, LEAKS, browser, page_for, press, press_validate  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

A1 = "a1_images_and_convolution"
INSTRUCTOR, ADA, BO, EVE = "hubt-teach", "hubt-ada", "hubt-bo", "hubt-eve"
USERS = (INSTRUCTOR, ADA, BO, EVE)
STUDENTS = (ADA, BO, EVE)
FULL_NAMES = {INSTRUCTOR: "Tess Teacher", ADA: "Ada Lovelace", BO: "Bo Peep", EVE: "Eve Dropper"}
COMMENT = "Transpose the axes (2, 0, 1); reshape keeps the bytes in place"


def _hand_grades_kept() -> bool:
    """Whether this checkout keeps formgrader's hand grades across `grade` runs (issue 19, part 3)."""
    from autograder.grading import results

    return hasattr(results, "HandGrade")


HAND_GRADES_KEPT = _hand_grades_kept()
BIN = str(Path(sys.executable).parent)
SHOTS = Path(os.environ.get("AUTOGRADER_SCREENSHOTS") or ROOT / "work" / "hub-screenshots")
if not SHOTS.is_absolute():
    SHOTS = ROOT / SHOTS


def missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the hub test creates Unix accounts and starts a hub: run it as root"
    if not os.path.exists(CHROMIUM):
        return "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    if not shutil.which("configurable-http-proxy"):
        return "no configurable-http-proxy (npm install -g configurable-http-proxy)"
    if not (Path(BIN) / "jupyterhub-singleuser").exists():
        return "JupyterHub is not installed in this environment"
    for tool in ("useradd", "userdel", "chpasswd", "runuser", "nsenter", "unshare"):
        if not shutil.which(tool):
            return f"no {tool} on this machine"
    return None


def _processes_of(uids: set[int]) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid in uids:
                    pids.append(int(entry.name))
    return pids


class Hub:
    """``python -m autograder hub`` for three fresh accounts, in a folder of its own under /tmp."""

    def __init__(self):
        self.passwords = {name: secrets.token_urlsafe(12) for name in USERS}
        self.proc, self.base, self.uids = None, None, set()
        try:
            for name in USERS:
                remove_user(name)
                subprocess.run(["useradd", "-m", "-s", "/bin/bash", "-c", FULL_NAMES[name], name], check=True,
                               capture_output=True)
                self.uids.add(pwd.getpwnam(name).pw_uid)
            subprocess.run(["chpasswd"], input="".join(f"{n}:{p}\n" for n, p in self.passwords.items()),
                           text=True, check=True, capture_output=True)
            self.base = Path(tempfile.mkdtemp(prefix="convnets-hub-", dir="/tmp"))
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        self.base.chmod(0o755)
        self.dir, self.exchange = self.base / "hub", self.base / "exchange"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.base / "hub.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder", "--course", str(ROOT), "hub", "--instructor", INSTRUCTOR,
             "--student", ",".join(STUDENTS), "--port", str(self.port), "--ip", "127.0.0.1",
             "--dir", str(self.dir), "--exchange", str(self.exchange)],
            cwd=ROOT, stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{self.url}/hub/login", timeout=5).status == 200:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"the hub did not start: {self.log.read_text()[-3000:]}")
        if self.proc.poll() is not None:
            pytest.fail(f"the hub stopped: {self.log.read_text()[-3000:]}")
        own = os.readlink("/proc/self/ns/mnt")
        self.namespaced = os.readlink(f"/proc/{self.proc.pid}/ns/mnt") != own

    def run_as(self, user: str, *argv: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        """``argv`` as ``user`` in their home, with the environment their server gets (the hub's
        mount namespace, where it has one: what the user's terminal on the hub sees)."""
        role = "instructor" if user == INSTRUCTOR else "student"
        home = pwd.getpwnam(user).pw_dir
        variables = {"HOME": home, "USER": user, "LANG": "C.UTF-8", "PATH": f"{BIN}:/usr/bin:/bin",
                     "JUPYTER_CONFIG_PATH": str(self.dir / role)}
        if role == "instructor":  # as the hub's spawner gives it to the instructor's server
            variables["AUTOGRADER_SECRET_FILE"] = f"{home}/convnets/course_secret"
        variables.update(env or {})
        cmd = ["runuser", "-u", user, "--", "env", "-i", "-C", home, *[f"{k}={v}" for k, v in variables.items()], *argv]
        if self.namespaced:
            cmd = ["nsenter", "-t", str(self.proc.pid), "-m", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def can(self, user: str, *argv: str) -> bool:
        """Whether ``argv`` (a plain system tool) succeeds as ``user``."""
        return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True).returncode == 0

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # the hub stops every user's server, then itself
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for sig in (signal.SIGTERM, signal.SIGKILL):  # what the test's accounts still run: started here
            for pid in _processes_of(self.uids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            time.sleep(1)
        for name in USERS:
            remove_user(name)
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)


def server_environment(user: str) -> dict[str, str]:
    """The environment of ``user``'s running single-user server."""
    uid = pwd.getpwnam(user).pw_uid
    for pid in _processes_of({uid}):
        with contextlib.suppress(OSError):
            if b"jupyterhub-singleuser" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                return dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
    raise AssertionError(f"{user} has no running server")


def remove_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", "-r", "-f", name], capture_output=True)


@pytest.fixture(scope="module")
def hub():
    reason = missing()
    if reason:
        pytest.skip(reason)
    import fcntl

    with open("/tmp/convnets-hub-test.lock", "w") as lock:  # the accounts are the machine's: one run at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        server = Hub()
        yield server
        server.stop()


def shot(page, name: str) -> None:
    """A small PNG of the page for the README (palette colours, scaled down)."""
    from PIL import Image

    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"hub-{name}.png"
    page.screenshot(path=str(path))
    with Image.open(path) as image:
        small = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.LANCZOS)
        small.convert("RGB").quantize(colors=64).save(path, optimize=True)


@contextlib.contextmanager
def session(browser, hub: Hub, user: str, name: str):  # noqa: F811 - browser is the fixture's value
    """A browser context logged in as ``user`` through the hub's login page, on their JupyterLab."""
    with page_for(browser, name=f"hub-{name}-{user}", viewport=(1200, 760)) as page:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", hub.passwords[user])
        if user == ADA:
            shot(page, "login")
        page.click("#login_submit")
        page.wait_for_selector(".lm-MenuBar", timeout=180_000)
        yield page


def assignment_list(page):
    """Open (or bring up) nbgrader's Assignment List through the Nbgrader menu."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    panel = page.locator("#assignments").last
    panel.wait_for(timeout=60_000)
    return panel


def wait_listed(panel, section: str, text: str, timeout: float = 120_000) -> None:
    panel.locator(f"#{section} .list_item", has_text=text).first.wait_for(timeout=timeout)


def submit(page, panel, times: int) -> None:
    """Press Submit on a1 in the Assignment List; wait until ``times`` submissions are listed."""
    panel.locator("#fetched_assignments_list .list_item", has_text=A1).first.locator("button", has_text="Submit").click()
    page.wait_for_function(
        "n => document.querySelectorAll('#submitted_assignments_list .list_item .item_status, "
        "#submitted_assignments_list .list_item').length >= n && "
        "(document.querySelector('#submitted_assignments_list')?.innerText.match(/\\d{4}-\\d\\d-\\d\\d/g) || []).length >= n",
        arg=times, timeout=120_000)


def open_notebook(page, hub: Hub, user: str) -> None:
    page.goto(f"{hub.url}/user/{user}/lab/tree/{A1}/{A1}.ipynb?reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')",
                           timeout=120_000)


def type_answer(page, marker: str, source: str) -> None:
    """Replace the code of the cell containing ``marker`` with ``source``, as typed text, and save."""
    cell = page.locator(".jp-CodeCell", has_text=marker).first
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector('.jp-mod-current .jp-mod-dirty, .lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
                           timeout=30_000)


@pytest.fixture(scope="module")
def released(hub, browser):  # noqa: F811
    """In formgrader's Manage Assignments, the instructor presses a1's Release (a1 a draft until
    then): the hub's route (road.ReleaseAssignment) records it in the gradebook and nbgrader's
    exchange hands it out. The release's folder in the exchange, the dialog's text and the
    assignment's cells in the gradebook, as the instructor reads them with nbgrader's API."""
    with session(browser, hub, INSTRUCTOR, "release") as page:
        formgrader(hub, page, "manage_assignments")
        row = page.locator("tr", has_text=A1).first
        row.locator(".status", has_text="draft").wait_for(timeout=90_000)  # else .release a is Unrelease
        row.locator(".release a").click()
        modal = page.locator("#success-modal, #error-modal").first
        modal.wait_for(timeout=240_000)
        page.wait_for_function(  # Bootstrap's fade and slide in, over: the screenshot shows the dialog whole
            "() => { const m = document.querySelector('.modal.in'), d = m && m.querySelector('.modal-dialog');"
            " const b = document.querySelector('.modal-backdrop.in');"
            " return d && b && getComputedStyle(m).opacity === '1' && getComputedStyle(b).opacity === '0.5'"
            " && ['none', 'matrix(1, 0, 0, 1, 0, 0)'].includes(getComputedStyle(d).transform); }", timeout=10_000)
        text = modal.inner_text()
        modal.locator("pre").first.evaluate("e => { e.scrollTop = e.scrollHeight; }")  # the log's end: Recorded, Released
        shot(page, "release")
        modal.locator(".modal-footer button").click()
        modal.wait_for(state="detached")
        row.locator(".status", has_text="released").wait_for(timeout=60_000)
    url = f"sqlite:///{course_folder() / 'grades' / 'gradebook.db'}"
    done = hub.run_as(INSTRUCTOR, sys.executable, "-c", RELEASED, url, A1)
    assert done.returncode == 0, done.stderr[-3000:]
    return hub.exchange / "convnets" / "outbound" / A1, text, {tuple(c) for c in json.loads(done.stdout)}


RELEASED = """
import json, sys
from nbgrader.api import Gradebook
with Gradebook(sys.argv[1]) as gb:
    print(json.dumps([[c.name, c.max_score] for nb in gb.find_assignment(sys.argv[2]).notebooks for c in nb.grade_cells]))
"""


@pytest.fixture(scope="module")
def submitted(hub, released, browser):  # noqa: F811
    """Both students: fetch, answer, Validate, submit (ada twice). The Validate dialogs' text."""
    a = Assignment(A1)
    marker = "def hwc_to_chw(image):"
    answers = {ADA: a.sol["layout_code"], BO: a.wrong("reshape instead of transpose", "layout")[1]}
    dialogs = {}
    for user in (ADA, BO):
        with session(browser, hub, user, "submit") as page:
            panel = assignment_list(page)
            wait_listed(panel, "released_assignments_list", A1)
            if user == ADA:
                shot(page, "assignment-list")
            panel.locator("#released_assignments_list .list_item", has_text=A1).first.locator(
                "button", has_text="Fetch").click()
            wait_listed(panel, "fetched_assignments_list", A1)
            if user == ADA:  # a first, blank hand-in: the resubmission below is the one graded
                submit(page, panel, 1)
            open_notebook(page, hub, user)
            type_answer(page, marker, answers[user])
            dialogs[user] = press_validate_with_shot(page, user)
            panel = assignment_list(page)
            submit(page, panel, 2 if user == ADA else 1)
            if user == ADA:
                shot(page, "submitted")
    return dialogs


def press_validate_with_shot(page, user: str) -> str:
    if user != BO:
        return press_validate(page)
    page.get_by_role("button", name="Validate").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog')?.innerText.includes('Validating')",
                           timeout=300_000)
    shot(page, "validate")
    text = dialog.inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    return text


def course_folder() -> Path:
    return Path(pwd.getpwnam(INSTRUCTOR).pw_dir) / "convnets"


def formgrader(hub: Hub, page, where: str) -> None:
    page.goto(f"{hub.url}/user/{INSTRUCTOR}/formgrader/{where}")


@pytest.fixture(scope="module")
def hostile(hub, released):
    """eve's hand-in, from her terminal through the exchange: the blank copy and a cell that tries
    to write into the instructor's home and course folder, and to read the course secret, the
    gradebook and the tests of the kernel's own history. The files it tries to write."""
    a = Assignment(A1)
    teach = Path(pwd.getpwnam(INSTRUCTOR).pw_dir)
    mark = f"written-by-eve-{os.getpid()}"
    targets = [teach / mark, course_folder() / mark, course_folder() / "grades" / mark, Path("/tmp") / mark]
    reads = [course_folder() / "course_secret", course_folder() / "grades" / "gradebook.db",
             course_folder() / "nbgrader_config.py"]
    nb = copy.deepcopy(a.release)  # the blank copy: every point it could get would be stolen
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, subprocess\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n        open(path, 'w').write('pwned')\n        print('WROTE', path)\n"
        "    except OSError as exc:\n        print('BLOCKED-WRITE', path, type(exc).__name__)\n"
        f"subprocess.run(['touch', {str(targets[0])!r}])\n"
        f"for path in {[str(r) for r in reads]!r}:\n"
        "    try:\n        print('PWNED-READ', open(path, 'rb').read(40))\n"
        "    except OSError as exc:\n        print('BLOCKED-READ', path, type(exc).__name__)\n"
        "history = '\\n'.join(get_ipython().user_ns.get('In', []))\n"
        "print('TESTS-IN-MY-KERNEL:', ('hidden' + '_seed') in history or ('check' + '_layout') in history)"))
    fetch = hub.run_as(EVE, "nbgrader", "fetch_assignment", A1)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    path = Path(pwd.getpwnam(EVE).pw_dir) / A1 / a.nb_file
    nbformat.write(nb, path)
    os.chown(path, pwd.getpwnam(EVE).pw_uid, pwd.getpwnam(EVE).pw_gid)
    done = hub.run_as(EVE, "nbgrader", "submit", A1)
    assert done.returncode == 0, done.stdout + done.stderr
    return targets


@pytest.fixture(scope="module")
def graded(hub, submitted, hostile, browser):  # noqa: F811
    """In formgrader: Collect, then each student's Autograde. The course folder, the grader's
    record, grades.csv's rows by student and the Autograde dialogs' text by student."""
    texts = {}
    with session(browser, hub, INSTRUCTOR, "autograde") as page:
        formgrader(hub, page, "manage_assignments")
        row = page.locator("tr", has_text=A1).first
        row.locator(".collect a").wait_for(timeout=90_000)
        texts["collect"] = press(page, row.locator(".collect a"))
        assert "Successfully collected" in texts["collect"], texts["collect"] + hub.log.read_text()[-4000:]
        formgrader(hub, page, f"manage_submissions/{A1}")
        for student in STUDENTS:
            line = page.locator("tr", has_text=student).first
            line.locator(".autograde a").wait_for(timeout=90_000)
            texts[student] = press(page, line.locator(".autograde a"), timeout=600_000)
            assert "Successfully autograded" in texts[student], texts[student] + hub.log.read_text()[-4000:]
        formgrader(hub, page, f"manage_submissions/{A1}")
        page.locator("tr", has_text=EVE).first.locator(".autograde a").wait_for(timeout=90_000)
        shot(page, "autograde")
    out = course_folder() / "grades"
    return course_folder(), out, grades_csv(out), texts


def grades_csv(out: Path) -> dict:
    with (out / "grades.csv").open() as fh:
        return {row["student"]: row for row in csv.DictReader(fh)}


GRADEBOOK = """
import json, sys
from nbgrader.api import Gradebook
found = {}
with Gradebook(sys.argv[1]) as gb:
    for student in sys.argv[3:]:
        nb = gb.find_submission_notebook(sys.argv[2], sys.argv[2], student)
        found[student] = {"score": nb.score, "grades": {g.name: [g.auto_score, g.manual_score] for g in nb.grades},
                          "comments": {c.name: c.manual_comment for c in nb.comments if c.manual_comment}}
print(json.dumps(found))
"""


def gradebook(hub: Hub) -> dict:
    """The gradebook formgrader shows, read by the instructor with nbgrader's own API."""
    url = f"sqlite:///{course_folder() / 'grades' / 'gradebook.db'}"
    done = hub.run_as(INSTRUCTOR, sys.executable, "-c", GRADEBOOK, url, A1, *STUDENTS)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def hand_graded(hub, graded, browser):  # noqa: F811
    """In formgrader's Manual Grading, bo's ``layout`` gets 1 point of 2 by hand and his answer a
    comment; the gradebook afterwards."""
    with session(browser, hub, INSTRUCTOR, "manual") as page:
        problems = []
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
        formgrader(hub, page, f"gradebook/{A1}/{A1}")
        page.wait_for_function("n => document.querySelectorAll('a.name-shown').length >= n", arg=len(STUDENTS),
                               timeout=90_000)
        first, last = FULL_NAMES[BO].split()
        name = page.locator("a.name-shown", has_text=re.compile(f"^({BO}|{last}, {first})$")).first
        page.get_by_role("button", name="Show All Names").click()
        name.wait_for(state="visible", timeout=30_000)
        name.click()
        score = page.locator("input.score#layout")
        score.wait_for(timeout=90_000)
        try:
            page.wait_for_function("() => document.querySelector('input.score#layout').placeholder !== ''",  # grades loaded
                                   timeout=90_000)
        except Exception as exc:
            raise AssertionError(f"formgrade did not load the grades: {problems}") from exc
        with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url and r.request.method == "PUT") as saved:
            score.fill("1")
            score.press("Tab")
        assert saved.value.ok, saved.value.status
        comment = page.locator("textarea.comment#layout_code-comment")
        with page.expect_response(lambda r: "/formgrader/api/comment/" in r.url and r.request.method == "PUT") as saved:
            comment.fill(COMMENT)
            comment.press("Tab")
        assert saved.value.ok, saved.value.status
        comment.scroll_into_view_if_needed()
        shot(page, "manual-grading")
    return gradebook(hub)


@pytest.fixture(scope="module")
def regraded(hub, hand_graded):
    """The instructor grades every submission again from the command line, on the course's own
    gradebook (no --db-url: the hub's course folder names grade's); grades.csv and the gradebook."""
    course = course_folder()
    run = hub.run_as(INSTRUCTOR, sys.executable, "-m", "autograder", "--course", str(ROOT), "grade", A1,
                     str(course / "submitted"), "--out", str(course / "grades"), "--regrade", "--quiet", timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return grades_csv(course / "grades"), gradebook(hub), run.stdout + run.stderr


@pytest.fixture(scope="module")
def feedback(hub, regraded, browser):  # noqa: F811
    """formgrader's Generate Feedback and Release Feedback, then each student presses Fetch
    Feedback in the Assignment List; each one's fetched page (path, text) and the dialogs' text."""
    texts = {}
    with session(browser, hub, INSTRUCTOR, "release-feedback") as page:
        formgrader(hub, page, "manage_assignments")
        row = page.locator("tr", has_text=A1).first
        row.locator(".generate-feedback a").wait_for(timeout=90_000)
        texts["generate"] = press(page, row.locator(".generate-feedback a"))
        assert "Success" in texts["generate"], texts["generate"][-5000:]
        texts["release"] = press(page, row.locator(".release-feedback a"))
        assert "Success" in texts["release"], texts["release"][-5000:]
    released = sorted((hub.exchange / "convnets" / "feedback").glob("*.html"))
    assert len(released) == len(STUDENTS), (released, texts["release"][-5000:], texts["generate"][-3000:])
    pages = {}
    for user in (ADA, BO):
        with session(browser, hub, user, "feedback") as page:
            panel = assignment_list(page)
            wait_listed(panel, "submitted_assignments_list", A1)
            panel.locator("#submitted_assignments_list button", has_text="Fetch Feedback").first.click()
            link = panel.locator("#submitted_assignments_list a", has_text="view feedback").first
            link.wait_for(timeout=60_000)
            if user == BO:
                shot(page, "feedback-fetched")
            home = Path(pwd.getpwnam(user).pw_dir)
            found = sorted((home / A1 / "feedback").glob(f"*/{A1}.html"))
            assert found, f"no feedback fetched into {home / A1 / 'feedback'}"
            pages[user] = (found[-1], found[-1].read_text())
            if user == BO:  # the page as the student opens it from their files
                page.goto(f"{hub.url}/user/{user}/files/{found[-1].relative_to(home)}")
                page.get_by_text("Hand grading").first.wait_for(timeout=30_000)
                page.get_by_text(COMMENT[:30]).first.scroll_into_view_if_needed()
                shot(page, "feedback")
    return pages, texts

# ---------------------------------------------------------------------------------------------


def test_the_hub_serves_its_login_page_and_writes_its_config(hub):
    assert "autograder hub" in (hub.dir / "jupyterhub_config.py").read_text()
    assert (hub.dir / "private").stat().st_mode & 0o077 == 0  # its database and cookie secret
    assert hub.exchange.stat().st_mode & 0o7777 == 0o1777  # nbgrader's shared exchange
    assert (Path(pwd.getpwnam(INSTRUCTOR).pw_dir) / "convnets").stat().st_mode & 0o077 == 0
    for user in USERS:
        assert Path(pwd.getpwnam(user).pw_dir).stat().st_mode & 0o077 == 0, user  # homes made private


def test_formgrader_release_hands_out_the_course_release_and_records_it(released):
    """formgrader's Release on the hub takes the course's route: the course's own ``assignments/`` copy
    into the exchange, its exercises and points into the gradebook (what Autograde looks for)."""
    from autograder.grading.notebooks import graded_cells

    outbound, text, cells = released
    assert "Successfully released" in text, text[-3000:]
    assert "Recorded" in text and "Released as:" in text, text[-3000:]  # nbgrader's log of the route's steps
    a = Assignment(A1)
    assert (outbound / a.nb_file).read_text() == (ROOT / "assignments" / A1 / a.nb_file).read_text()
    want = graded_cells(nbformat.read(ROOT / "solutions" / A1 / f"{A1}.ipynb", as_version=4))
    assert cells == {(gid, float(pts)) for gid, pts in want}


def test_students_validate_with_the_graders_path(submitted):
    """The toolbar's Validate on the hub is the judge's: ada's layout passes, bo's bug is named with
    the check's message, the exercises left blank say so; nothing of the grader's insides shows."""
    ada, bo = (" ".join(submitted[user].split()) for user in (ADA, BO))  # the dialog wraps its lines
    assert "layout (0 of 2 points)" not in ada and "grayscale (0 of 2 points)" in ada, ada
    assert "not implemented yet" in ada and "visible tests: 2 of 25 points" in ada, ada
    assert "layout (0 of 2 points)" in bo and "hwc_to_chw(image of shape (4, 5, 3)): values differ" in bo, bo
    for text in (ada, bo):
        assert "Traceback" not in text and "autograder/" not in text and "hidden_seed" not in text


def test_the_instructors_nbgrader_takes_the_judges_road(hub):
    """The instructor's nbgrader config — on their servers' config path, and in ~/convnets for nbgrader
    run there from any shell — routes Autograde and feedback to the judge, the grader's record in
    ~/convnets/grades; the file in the course folder is the instructor's own."""
    from autograder.grading import formgrader

    course = course_folder()
    assert formgrader.routed(hub.dir / "instructor") and formgrader.routed(course)
    assert (course / "nbgrader_config.py").read_text() == (hub.dir / "instructor" / "nbgrader_config.py").read_text()
    assert (course / "nbgrader_config.py").stat().st_uid == pwd.getpwnam(INSTRUCTOR).pw_uid
    shown = hub.run_as(INSTRUCTOR, "python", "-c", "from traitlets.config.loader import PyFileConfigLoader as L; "
                       "c = L('nbgrader_config.py', path='convnets').load_config(); "
                       "print(c.Judge.out, c.CourseDirectory.db_url, c.CourseDirectory.autograded_directory)")
    assert shown.stdout.split() == [str(course / "grades"), f"sqlite:///{course / 'grades' / 'gradebook.db'}",
                                    "grades/nbgrader/autograded"], shown.stdout + shown.stderr


def test_formgrader_autograde_grades_with_the_judge_the_newest_submission(graded):
    _, _, rows, texts = graded
    a = Assignment(A1)
    assert "Successfully collected" in texts["collect"], texts["collect"]
    for student in STUDENTS:
        text = texts[student]
        assert "Successfully autograded" in text and "with the judge, in the sandbox" in text, text[:3000]
        assert "Applying preprocessor: Judge" in text, text[:3000]  # nbgrader's log of its steps: the judge's only
        assert "Applying preprocessor: Execute" not in text and "Executing notebook" not in text, text[:3000]
    assert set(rows) == set(STUDENTS), rows
    assert float(rows[ADA]["score"]) == a.points["layout"], rows[ADA]  # the resubmission, not the blank one
    assert float(rows[BO]["score"]) == float(rows[EVE]["score"]) == 0, rows
    assert {rows[s]["status"] for s in STUDENTS} == {"graded"}


def test_a_hostile_submission_gains_nothing_through_formgrader(hub, hostile, graded):
    """eve's cell ran in the sandbox: nothing written outside it, nothing of the instructor's read,
    no test in her kernel, no point gained; her graded notebook and page show no hidden test."""
    _, out, rows, _ = graded
    assert not [t for t in hostile if t.exists()], hostile
    text = (out / "nbgrader" / "autograded" / EVE / A1 / f"{A1}.ipynb").read_text()
    added = [c for c in nbformat.reads(text, as_version=4).cells if c.get("id", "").startswith("added-by-student")]
    printed = "".join(o.get("text", "") for c in added for o in c.get("outputs", []) if o.get("name") == "stdout")
    assert printed.count("BLOCKED-WRITE") == 3 and printed.count("BLOCKED-READ") == 3, printed  # it ran, and failed
    assert f"WROTE {hostile[-1]}" in printed  # its own /tmp, inside the sandbox (and gone with it)
    assert "PWNED-READ" not in printed and "TESTS-IN-MY-KERNEL: False" in printed, printed
    page = (out / "feedback" / EVE / A1 / f"{A1}.html").read_text()
    assert not [leak for leak in LEAKS if leak in text or leak in page]
    assert float(rows[EVE]["score"]) == 0


def test_instructor_sees_the_grades_in_formgrader(hub, graded, browser):  # noqa: F811
    _, _, rows, _ = graded
    with session(browser, hub, INSTRUCTOR, "formgrader") as page:
        formgrader(hub, page, "manage_students")
        page.locator("tr", has_text=BO).first.wait_for(timeout=90_000)
        shot(page, "formgrader")
        env = server_environment(INSTRUCTOR)
        assert env["AUTOGRADER_SECRET_FILE"] == f"{pwd.getpwnam(INSTRUCTOR).pw_dir}/convnets/course_secret"
        for student, row in rows.items():
            cells = [c.strip() for c in page.locator("tr", has_text=student).first.locator("td").all_inner_texts()]
            assert f"{float(row['score']):g} / {float(row['max_score']):g}" in cells, cells
            if HAND_GRADES_KEPT:  # names from the accounts (issue 19, part 3), not "None, None"
                first, last = FULL_NAMES[student].split()
                assert f"{last}, {first}" in cells, cells


def test_hand_grading_is_saved_in_the_gradebook(hand_graded):
    bo = hand_graded[BO]
    assert bo["grades"]["layout"] == [0, 1], bo
    assert bo["comments"] == {"layout_code": COMMENT}, bo
    assert bo["score"] == 1, bo


def test_hand_grading_survives_a_regrade_from_the_command_line(regraded):
    """The CLI regrade grades every submission again; the comment stays, and — where this checkout
    keeps hand grades (issue 19, part 3) — bo's hand score too, in the gradebook and grades.csv."""
    rows, book, _ = regraded
    a = Assignment(A1)
    assert book[BO]["comments"] == {"layout_code": COMMENT}, book[BO]
    assert book[BO]["grades"]["layout"][0] == 0 and float(rows[ADA]["score"]) == a.points["layout"], (book, rows)
    if not HAND_GRADES_KEPT:
        pytest.skip("this checkout's `grade` does not keep hand grades yet (issue 19, part 3)")
    assert book[BO]["grades"]["layout"] == [0, 1] and book[BO]["score"] == 1, book[BO]
    assert float(rows[BO]["score"]) == 1 and float(rows[BO]["auto_score"]) == 0, rows[BO]
    assert rows[BO]["hand_graded"] == "yes" and rows[ADA]["hand_graded"] == "no", rows


def test_formgrader_releases_the_graders_feedback_and_each_student_fetches_their_own(feedback):
    """Generate and Release Feedback in formgrader hand each student the grader's page: the score
    of the graded (newest) submission, the reason for each lost point, the grader's comment, and
    none of the hidden tests; each fetched only their own."""
    pages, texts = feedback
    a = Assignment(A1)
    assert "Success" in texts["generate"] and "Success" in texts["release"], texts
    (ada_path, ada), (bo_path, bo) = pages[ADA], pages[BO]
    assert f"Score: {a.points['layout']:.1f} / {a.max:.1f}" in ada and "layout</code> (−2)" not in ada
    assert f"Score: 0.0 / {a.max:.1f}" in bo and "layout</code> (−2)" in bo
    assert "Hand grading" in bo and COMMENT.split(";")[0] in bo and "Hand grading" not in ada
    assert "<code>layout_code</code>" in bo and "&amp;#" not in bo  # no entity shown as text
    if HAND_GRADES_KEPT:
        assert f"Score after hand grading: 1 / {a.max:g}" in bo, bo[:3000]
        for page in (ada, bo):  # the release's header renders as the instructor wrote it (issue 19, part 5)
            assert "Generated file" in page and "&#42;&#42;Generated" not in page and "&amp;gt;" not in page
    for page in (ada, bo):
        assert not [leak for leak in LEAKS if leak in page]
    for path in (ada_path, bo_path):
        assert [p.name for p in path.parent.parent.glob(f"*/{A1}.html")] == [path.name]  # their own page only


def test_one_student_reads_nothing_of_anothers(hub, feedback, graded):
    course, out, _, _ = graded
    pages, _ = feedback
    inbound, outbox = hub.exchange / "convnets" / "inbound", hub.exchange / "convnets" / "feedback"
    for me, other in ((BO, ADA), (ADA, BO)):
        home = Path(pwd.getpwnam(other).pw_dir)
        assert not hub.can(me, "ls", str(inbound)) and not hub.can(me, "ls", str(outbox))
        assert not hub.can(me, "ls", str(home)) and not hub.can(me, "cat", str(home / A1 / f"{A1}.ipynb"))
        assert not hub.can(me, "cat", str(pages[other][0]))  # the other's feedback
        assert not hub.can(me, "ls", str(course)) and not hub.can(me, "cat", str(out / "grades.csv"))
        assert hub.can(me, "ls", str(hub.exchange / "convnets" / "outbound" / A1))  # the release is everyone's
        assert not {k for k in server_environment(me) if k.startswith("AUTOGRADER_SECRET")}  # no secret
    for entry in inbound.iterdir():  # a submission is hidden by a name no one else can guess
        student, assignment, _stamp, tail = entry.name.split("+")
        assert assignment == A1 and len(tail) >= 12, entry.name


def test_a_student_cannot_open_anothers_feedback_through_the_hub(hub, browser, feedback):  # noqa: F811
    pages, _ = feedback
    ada_page = pages[ADA][0].relative_to(Path(pwd.getpwnam(ADA).pw_dir))
    with session(browser, hub, BO, "other-feedback") as page:
        response = page.goto(f"{hub.url}/user/{ADA}/files/{ada_page}")
        assert response.status == 403, (response.status, page.url)
        assert "Score:" not in page.content()


def test_a_student_cannot_open_anothers_server(hub, browser, submitted):  # noqa: F811
    with session(browser, hub, BO, "other-server") as page:
        response = page.goto(f"{hub.url}/user/{ADA}/api/contents/{A1}")
        assert response.status == 403, (response.status, page.url)
        assert f"{A1}.ipynb" not in page.content()


def test_hub_command_says_what_is_wrong_in_one_line(tmp_path):
    """Bad usage of `autograder hub` is one line and exit status 2, before anything is written."""
    from .support import autograder

    for args, words in ((["hub"], "name at least one instructor"),
                        (["hub", "--instructor", "no-such-account-here"], "no Unix account 'no-such-account-here'"),
                        (["hub", "--instructor", "root"], "is root"),
                        (["hub", "--instructor", "nobody", "--student", "@no-such-group-here"], "no Unix group")):
        done = autograder(*args, "--dir", str(tmp_path / "hub"), "--exchange", str(tmp_path / "exchange"))
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "hub").exists() and not (tmp_path / "exchange").exists()


def test_the_hub_changes_nothing_through_a_link_or_of_someone_elses(tmp_path):
    """Root gives folders away (the instructor's ~/convnets, the exchange's course folder): a
    symbolic link planted there, or a folder of another account, is refused, and its target untouched."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from autograder.course import UsageError
    from autograder.hub import own_folder, write_owned

    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        own_folder(tmp_path / "link", "nobody", 0o700)
    assert target.stat().st_uid == 0 and target.stat().st_mode & 0o777 == 0o755
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(UsageError, match="belongs to nobody"):
        own_folder(theirs, "daemon", 0o700)
    assert theirs.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert own_folder(tmp_path / "new", "daemon", 0o700).stat().st_uid == pwd.getpwnam("daemon").pw_uid
    folder = own_folder(tmp_path / "course", "daemon", 0o700)  # a link planted where the hub writes its config
    (folder / "nbgrader_config.py").symlink_to(target / "victim")
    written = write_owned(folder, "nbgrader_config.py", "c = get_config()\n", "daemon")
    assert not written.is_symlink() and written.stat().st_uid == pwd.getpwnam("daemon").pw_uid
    assert not (target / "victim").exists()
