"""The course on a real JupyterHub, as its users meet it (issue 19: the hub, students on it).

One hub for the module, started by the course's own command (``python -m autograder hub``) as
root, with three Unix accounts the fixture creates and removes: an instructor and two students,
who log in through the hub's login page with their own passwords (PAM). The workflow is a chain
of module fixtures, each a stage a later stage builds on, so that the steps still to come (formgrader's
Autograde button, manual grades, formgrader's feedback release) slot in between:

1. ``released``: the instructor releases a1 into nbgrader's exchange (``nbgrader release_assignment``).
2. ``submitted``: in Chromium, each student logs in, fetches a1 in the Assignment List, opens it,
   types an answer into the ``layout`` cell — ada the solution, bo a catalogued bug — saves,
   presses Validate in the toolbar (the grader's path: ada's layout passes, bo's fails with the
   check's message) and submits from the Assignment List; ada had already submitted the blank copy
   once, so her resubmission is what must be graded.
3. ``graded``: the instructor collects (``nbgrader collect``) and grades the collected submissions
   with ``python -m autograder grade``, as the instructor's own account.
4. ``feedback``: the grade's feedback pages are released through the exchange with nbgrader's own
   ``release_feedback`` (the pages taken from ``grade``'s output), and each student presses
   *Fetch Feedback* in the Assignment List and opens their own page.

Isolation is checked as each student's own account: no listing of the exchange's inbound or
feedback folders, no entry into another student's home or the instructor's course folder, and no
way into another student's server through the hub.

Screenshots of the steps go to ``work/hub-screenshots/`` (``AUTOGRADER_SCREENSHOTS=docs/img``
writes the README's copies). Needs root, Debian's Chromium, ``configurable-http-proxy`` (npm) and
JupyterHub; ``.ci/run`` installs them. The hub, its users and its folders are removed afterwards.
"""

from __future__ import annotations

import contextlib
import csv
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from .classes import Assignment
from .support import ROOT, SECRET, free_port
from .test_browser import CHROMIUM, FAILURES, browser, press_validate  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

A1 = "a1_images_and_convolution"
INSTRUCTOR, ADA, BO = "hubt-teach", "hubt-ada", "hubt-bo"
USERS = (INSTRUCTOR, ADA, BO)
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
                subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
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
             "--student", f"{ADA},{BO}", "--port", str(self.port), "--ip", "127.0.0.1",
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
                     "JUPYTER_CONFIG_PATH": str(self.dir / role), **(env or {})}
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
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    try:
        page.goto(f"{hub.url}/hub/login")
        page.fill("#username_input", user)
        page.fill("#password_input", hub.passwords[user])
        if user == ADA:
            shot(page, "login")
        page.click("#login_submit")
        page.wait_for_selector(".lm-MenuBar", timeout=180_000)
        yield page
    except BaseException:
        FAILURES.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(FAILURES / f"hub-{name}-{user}.png"), full_page=True)
        raise
    finally:
        context.close()


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
def released(hub):
    done = hub.run_as(INSTRUCTOR, "nbgrader", "release_assignment", A1)
    assert done.returncode == 0, done.stdout + done.stderr
    return hub.exchange / "convnets" / "outbound" / A1


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


@pytest.fixture(scope="module")
def graded(hub, submitted):
    """The instructor collects and grades; grades.csv's rows by student."""
    collect = hub.run_as(INSTRUCTOR, "nbgrader", "collect", A1)
    assert collect.returncode == 0, collect.stdout + collect.stderr
    course = Path(pwd.getpwnam(INSTRUCTOR).pw_dir) / "convnets"
    out = course / "grades"
    run = hub.run_as(INSTRUCTOR, sys.executable, "-m", "autograder", "--course", str(ROOT), "grade", A1,
                     str(course / "submitted"), "--out", str(out), "--quiet",
                     "--db-url", f"sqlite:///{course / 'gradebook.db'}",  # the gradebook formgrader shows
                     env={"AUTOGRADER_SECRET": SECRET}, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with (out / "grades.csv").open() as fh:
        rows = {row["student"]: row for row in csv.DictReader(fh)}
    return course, out, rows


@pytest.fixture(scope="module")
def feedback(hub, graded, browser):  # noqa: F811
    """The grade's feedback pages released through the exchange (nbgrader's release_feedback on
    them), then fetched by each student in the Assignment List; each one's fetched page."""
    course, out, _ = graded
    for student in (ADA, BO):  # release_feedback finds the submission's secret beside each page
        for name in ("timestamp.txt", "submission_secret.txt"):
            shutil.copy(course / "submitted" / student / A1 / name, out / "feedback" / student / A1 / name)
    run = hub.run_as(INSTRUCTOR, "nbgrader", "release_feedback", A1,
                     f"--CourseDirectory.feedback_directory={out / 'feedback'}")
    assert run.returncode == 0, run.stdout + run.stderr
    pages = {}
    for user in (ADA, BO):
        with session(browser, hub, user, "feedback") as page:
            panel = assignment_list(page)
            wait_listed(panel, "submitted_assignments_list", A1)
            panel.locator("#submitted_assignments_list button", has_text="Fetch Feedback").first.click()
            link = panel.locator("#submitted_assignments_list a", has_text="view feedback").first
            link.wait_for(timeout=60_000)
            if user == ADA:
                shot(page, "feedback-fetched")
            home = Path(pwd.getpwnam(user).pw_dir)
            found = sorted((home / A1 / "feedback").glob(f"*/{A1}.html"))
            assert found, f"no feedback fetched into {home / A1 / 'feedback'}"
            pages[user] = found[-1].read_text()
            if user == ADA:  # the page as the student opens it from their files
                page.goto(f"{hub.url}/user/{user}/files/{found[-1].relative_to(home)}")
                page.wait_for_selector("main, body", timeout=30_000)
                shot(page, "feedback")
    return pages


# ---------------------------------------------------------------------------------------------


def test_the_hub_serves_its_login_page_and_writes_its_config(hub):
    assert "autograder hub" in (hub.dir / "jupyterhub_config.py").read_text()
    assert (hub.dir / "private").stat().st_mode & 0o077 == 0  # its database and cookie secret
    assert hub.exchange.stat().st_mode & 0o7777 == 0o1777  # nbgrader's shared exchange
    assert (Path(pwd.getpwnam(INSTRUCTOR).pw_dir) / "convnets").stat().st_mode & 0o077 == 0
    for user in USERS:
        assert Path(pwd.getpwnam(user).pw_dir).stat().st_mode & 0o077 == 0, user  # homes made private


def test_students_validate_with_the_graders_path(submitted):
    """The toolbar's Validate on the hub is the judge's: ada's layout passes, bo's bug is named with
    the check's message, the exercises left blank say so; nothing of the grader's insides shows."""
    ada, bo = (" ".join(submitted[user].split()) for user in (ADA, BO))  # the dialog wraps its lines
    assert "layout (0 of 2 points)" not in ada and "grayscale (0 of 2 points)" in ada, ada
    assert "not implemented yet" in ada and "visible tests: 2 of 25 points" in ada, ada
    assert "layout (0 of 2 points)" in bo and "hwc_to_chw(image of shape (4, 5, 3)): values differ" in bo, bo
    for text in (ada, bo):
        assert "Traceback" not in text and "autograder/" not in text and "hidden_seed" not in text


def test_instructor_collects_and_grades_the_newest_submission(graded):
    _, _, rows = graded
    a = Assignment(A1)
    assert set(rows) == {ADA, BO}, rows
    assert float(rows[ADA]["score"]) == a.points["layout"], rows[ADA]  # the resubmission, not the blank one
    assert float(rows[BO]["score"]) == 0, rows[BO]
    assert rows[ADA]["status"] == rows[BO]["status"] == "graded"


def test_instructor_sees_the_grades_in_formgrader(hub, graded, browser):  # noqa: F811
    _, _, rows = graded
    with session(browser, hub, INSTRUCTOR, "formgrader") as page:
        page.goto(f"{hub.url}/user/{INSTRUCTOR}/formgrader/manage_students")
        page.locator("tr", has_text=BO).first.wait_for(timeout=90_000)
        shot(page, "formgrader")
        env = server_environment(INSTRUCTOR)
        assert env["AUTOGRADER_SECRET_FILE"] == f"{pwd.getpwnam(INSTRUCTOR).pw_dir}/convnets/course_secret"
        for student, row in rows.items():
            cells = [c.strip() for c in page.locator("tr", has_text=student).first.locator("td").all_inner_texts()]
            assert f"{float(row['score']):g} / {float(row['max_score']):g}" in cells, cells


def test_each_student_fetches_their_own_feedback(feedback):
    """Each page is its student's: the score of the graded (newest) submission, the reason for each
    lost point, and none of the hidden tests."""
    a = Assignment(A1)
    ada, bo = feedback[ADA], feedback[BO]
    assert f"Score: {a.points['layout']:.1f} / {a.max:.1f}" in ada and "layout</code> (−2)" not in ada
    assert f"Score: 0.0 / {a.max:.1f}" in bo and "layout</code> (−2)" in bo
    for page in (ada, bo):
        assert "BEGIN HIDDEN TESTS" not in page and "hidden_seed" not in page


def test_one_student_reads_nothing_of_anothers(hub, feedback, graded):
    course, out, _ = graded
    inbound, outbox = hub.exchange / "convnets" / "inbound", hub.exchange / "convnets" / "feedback"
    for me, other in ((BO, ADA), (ADA, BO)):
        home = Path(pwd.getpwnam(other).pw_dir)
        assert not hub.can(me, "ls", str(inbound)) and not hub.can(me, "ls", str(outbox))
        assert not hub.can(me, "ls", str(home)) and not hub.can(me, "cat", str(home / A1 / f"{A1}.ipynb"))
        assert not hub.can(me, "ls", str(course)) and not hub.can(me, "cat", str(out / "grades.csv"))
        assert hub.can(me, "ls", str(hub.exchange / "convnets" / "outbound" / A1))  # the release is everyone's
        assert not {k for k in server_environment(me) if k.startswith("AUTOGRADER_SECRET")}  # no secret
    for entry in inbound.iterdir():  # a submission is hidden by a name no one else can guess
        student, assignment, _stamp, tail = entry.name.split("+")
        assert assignment == A1 and len(tail) >= 12, entry.name


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
    from autograder.hub import own_folder

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
