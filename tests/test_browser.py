"""The course where its users are: JupyterLab and formgrader in a real browser (Playwright, Chromium).

* **Student**: ``python -m autograder lab`` on a course of its own (a temporary folder whose
  ``solutions/`` and ``assignments/`` are the checkout's): a1 fetched into ``work/mine``, opened,
  a cell run, then Run All (the first failing test cell shows the check's message alone), Validate
  pressed on the blank copy, the solution and a broken copy, and the dialog's text checked; nbgrader's instructor panels are not there; no tracked file changed.
* **Instructor**: a small graded class opened with ``python -m autograder formgrader OUT``: the
  assignment is released (not a draft), its submission count and each student's score are the
  grade's.
* **Self-learner**: the lectures built as a site (navigation, math, figures, links, offline), and
  lecture 02 opened in a plain JupyterLab, where the kernel playground redraws its picture when
  another preset is picked in its menu.

Chromium is Debian's (``/usr/bin/chromium``; Playwright's own download is not reachable);
``.ci/run`` installs it. A failing test leaves a screenshot in ``work/browser-failures/``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .classes import Assignment
from .support import ROOT, SECRET, autograder, course_copy, free_port, wait_for_jupyter

pytestmark = pytest.mark.slow

A1 = "a1_images_and_convolution"
TOKEN = "browser-test-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FAILURES = ROOT / "work" / "browser-failures"


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chrome
        chrome.close()


@contextlib.contextmanager
def page_for(browser, request=None, *, name: str | None = None, viewport: tuple[int, int] = (1400, 900)):
    """A fresh page; on failure its screenshot goes to work/browser-failures/<name or test>.png."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    try:
        yield page
    except BaseException:
        FAILURES.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(FAILURES / f"{name or request.node.name}.png"), full_page=True)
        raise
    finally:
        context.close()


class Server:
    """A JupyterLab started by one of the course's commands, on a free port, with a known token."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]):
        self.port = free_port()
        self.log = cwd / f"server-{self.port}.log"
        env = {**env, "JUPYTER_TOKEN": TOKEN, "AUTOGRADER_SECRET": SECRET}
        self.proc = subprocess.Popen([*args, "--no-browser", "--port", str(self.port)], cwd=cwd, env=env,
                                     stdout=self.log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        if not wait_for_jupyter(self.base, TOKEN, self.proc, 90):
            self.stop()
            pytest.fail(f"JupyterLab did not start: {self.log.read_text()[-2000:]}")

    def url(self, path: str) -> str:
        return f"{self.base}/{path}{'&' if '?' in path else '?'}token={TOKEN}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 15)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, 9)


def tracked_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--", "assignments", "solutions", "lectures"],
                          cwd=ROOT, capture_output=True, text=True).stdout


# ---------------------------------------------------------------------------------------------
# The student
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def student(tmp_path_factory):
    course = course_copy(tmp_path_factory.mktemp("student-course"))
    before = tracked_state()
    env = {**os.environ, "HOME": str(course)}  # the student's own home: no user-level Jupyter settings
    server = Server([sys.executable, "-m", "autograder", "--course", str(course), "lab"], course, env)
    mine = course / "work" / "mine"
    a = Assignment(A1)
    wrong = a.cat.WRONG_ANSWERS[0]
    for name, nb in {"solved": a.nb(), "broken": a.nb(dict([a.wrong(wrong.label, wrong.exercise)]))}.items():
        (mine / name).mkdir()
        nbformat.write(nb, mine / name / a.nb_file)
    yield server, mine, before
    server.stop()


def open_notebook(page, server: Server, path: str) -> None:
    """Open ``path`` alone in a fresh workspace and wait until its kernel is idle."""
    page.goto(server.url(f"lab/tree/{path}?reset"))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => /\\|\\s*Idle/.test(document.querySelector('#jp-main-statusbar')?.innerText || '')",
                           timeout=120_000)


def run_first_code_cell(page) -> None:
    """Select the first code cell and press Shift+Enter, as a student would; again if a keypress
    sent while the kernel was still connecting was lost."""
    prompt = "() => /\\[\\d+\\]/.test(document.querySelector('.jp-CodeCell .jp-InputPrompt')?.innerText || '')"
    for attempt in range(3):
        page.locator(".jp-CodeCell").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_function(prompt, timeout=60_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError: try once more
            if attempt == 2:
                raise


def press_validate(page) -> str:
    """Press Validate and read the dialog as the student sees it (hidden text left out); its text
    must fit the dialog's width (wrapped, not clipped or scrolled)."""
    page.get_by_role("button", name="Validate").first.click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=300_000)
    page.wait_for_function("() => !document.querySelector('.jp-Dialog')?.innerText.includes('Validating')",
                           timeout=300_000)
    text = dialog.inner_text()
    overflow = page.evaluate("() => [...document.querySelectorAll('.jp-Dialog pre')]"
                             ".filter(p => p.offsetParent && p.scrollWidth > p.clientWidth + 1).length")
    assert overflow == 0, text
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached", timeout=10_000)
    return text


def run_all_and_read_the_first_error(page) -> str:
    """Run ▸ Run All Cells, as a student would; the text of the first error output with a hint (Run
    All stops at the first failing cell)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                         has_text="Hint:").first
    error.wait_for(timeout=120_000)
    error.scroll_into_view_if_needed()  # JupyterLab lays out no cell out of view
    for _ in range(100):  # until it is laid out
        if error.inner_text().strip():
            break
        page.wait_for_timeout(100)
    return error.inner_text()


def test_fetch_put_a1_in_the_students_own_folder(student):
    _, mine, _ = student
    assert (mine / A1 / f"{A1}.ipynb").read_bytes() == (ROOT / "assignments" / A1 / f"{A1}.ipynb").read_bytes()


def test_student_runs_a_cell_and_validates(student, browser, request):
    server, mine, before = student
    with page_for(browser, request) as page:
        open_notebook(page, server, f"{A1}/{A1}.ipynb")
        run_first_code_cell(page)
        error = run_all_and_read_the_first_error(page)  # the layout test on the released stub: its message only
        assert error.strip() == ("hwc_to_chw(image of shape (4, 5, 3)) is not implemented yet (it raises "
                                 "NotImplementedError).\n  Hint: replace the `raise NotImplementedError()` line "
                                 "with your code."), error

        blank = press_validate(page)
        words = " ".join(blank.split())
        assert "Success" not in blank and "not implemented yet" in words, blank
        assert "Traceback" not in blank and "autograder/" not in blank
        assert "visible tests: 0 of 25 points; 10 exercises fail (25 points)." in words
        assert "The hidden tests run at grading time on more cases" in words and "Validated in" in words
        assert "The following cell failed" not in blank and words.count("layout (0 of 2 points)") == 1

        open_notebook(page, server, f"solved/{A1}.ipynb")
        solved = " ".join(press_validate(page).split())
        assert "Success! Your notebook passes all the visible tests: 25 of 25 points." in solved, solved
        assert "The following cell failed" not in solved and "Validated in" in solved

        open_notebook(page, server, f"broken/{A1}.ipynb")
        a = Assignment(A1)
        broken = press_validate(page)
        wrong = a.cat.WRONG_ANSWERS[0]
        assert "Success" not in broken and wrong.exercise in broken, broken
    assert tracked_state() == before  # working, saving and validating touched no tracked file


def test_validate_from_the_command_palette_counts_its_seconds(student, browser, request):
    """The course's labextension: "Validate Assignment" in the command palette presses the notebook's
    Validate, and the button counts the seconds while it runs ("Validating… 2 s")."""
    server, _, _ = student
    with page_for(browser, request) as page:
        open_notebook(page, server, f"broken/{A1}.ipynb")
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Control+Shift+c")  # the command palette
        page.keyboard.type("Validate Assignment")
        item = page.locator(".lm-CommandPalette-item", has_text="Validate Assignment")
        item.first.wait_for(timeout=10_000)
        item.first.click()
        page.wait_for_function("() => /^Validating\u2026 \\d+ s$/.test(document.querySelector("
                               "'.validate-button .jp-ToolbarButtonComponent-label')?.innerText || '')",
                               timeout=60_000)
        dialog = page.locator(".jp-Dialog")
        dialog.wait_for(timeout=300_000)
        page.wait_for_function("() => document.querySelector('.jp-Dialog')?.innerText.includes('Validated in')",
                               timeout=300_000)
        wrong = Assignment(A1).cat.WRONG_ANSWERS[0]  # the broken copy's
        text = " ".join(dialog.inner_text().split())
        assert re.search(r"visible tests: \d+ of 25 points; \d+ exercises? fails? \(", text) and wrong.exercise in text, text
        page.keyboard.press("Escape")
        label = page.locator(".validate-button .jp-ToolbarButtonComponent-label").first
        assert label.inner_text() == "Validate"


def test_student_sees_no_instructor_panels(student, browser, request):
    server, _, _ = student
    with page_for(browser, request) as page:
        page.goto(server.url("lab"))
        page.wait_for_selector("#jp-menu-panel, .lm-MenuBar", timeout=90_000)
        menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
        assert "File" in menus and "Nbgrader" not in menus, menus
        page.keyboard.press("Control+Shift+c")  # the command palette
        page.keyboard.type("Assignment List")
        assert page.locator(".lm-CommandPalette-item", has_text="Assignment List").count() == 0
    log = server.log.read_text()
    assert "Unwritable directory" not in log and "exchange directory does not exist" not in log


# ---------------------------------------------------------------------------------------------
# The instructor
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    a = Assignment(A1)
    subs, out = tmp_path_factory.mktemp("fg-subs"), tmp_path_factory.mktemp("fg-out")
    wrong = a.cat.WRONG_ANSWERS[0]
    for student, nb in {"ada": a.nb(), "bo": a.release, "cleo": a.nb(dict([a.wrong(wrong.label, wrong.exercise)]))}.items():
        (subs / student).mkdir()
        nbformat.write(nb, subs / student / a.nb_file)
    proc = autograder("grade", A1, str(subs), "--out", str(out), "--quiet", "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    from autograder.grading.results import StudentResult

    scores = {p.stem: StudentResult.load(p).score for p in (out / "results" / A1).glob("*.json")}
    server = Server([sys.executable, "-m", "autograder", "formgrader", str(out)], out, dict(os.environ))
    yield server, out, scores, a.max
    server.stop()


def test_formgrader_counts_agree_with_the_grade(graded_class):
    from autograder.grading import formgrader

    _, out, scores, _ = graded_class
    rows = {r["name"]: r for r in formgrader.counts(out)}
    assert rows[A1]["status"] == "released" and rows[A1]["num_submissions"] == len(scores)
    assert (out / "nbgrader_config.py").stat().st_mode & 0o077 == 0  # it holds the database URL


def test_formgrader_in_the_browser(graded_class, browser, request):
    server, _, scores, full = graded_class
    with page_for(browser, request) as page:
        page.goto(server.url("formgrader/manage_assignments"))
        row = page.locator("tr", has_text=A1).first
        row.wait_for(timeout=90_000)
        text = row.inner_text()
        assert "released" in text.lower() and str(len(scores)) in text, text
        page.goto(server.url(f"formgrader/gradebook/{A1}/{A1}"))  # the notebook's submissions, anonymised
        page.locator("tr", has_text="Submission #").first.wait_for(timeout=60_000)
        overall = []
        for row in page.locator("tr", has_text="Submission #").all():
            cells = [c.strip() for c in row.locator("td").all_inner_texts()]
            overall.append(cells[next(i for i, c in enumerate(cells) if c.startswith("Submission #")) + 1])
        overall.sort()
        assert overall == sorted(f"{score:g} / {full:g}" for score in scores.values()), overall
        page.goto(server.url("formgrader/manage_students"))  # by student, with the total
        page.locator("tr", has_text="cleo").first.wait_for(timeout=60_000)
        for student, score in scores.items():
            cells = [c.strip() for c in page.locator("tr", has_text=student).first.locator("td").all_inner_texts()]
            assert cells[cells.index(student) + 2] == f"{score:g} / {full:g}", cells  # id, email, overall
    assert "FileNotFoundError" not in server.log.read_text()


def test_formgrader_grading_page_math_renders_offline(graded_class, browser, request):
    from nbgrader.api import Gradebook

    server, out, _, _ = graded_class
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        notebook_id = gb.find_submission_notebook(A1, A1, "ada").id
    blocked: list = []
    with page_for(browser, request) as page:
        page.route("http*://**", lambda route: route.continue_() if route.request.url.startswith(server.base)
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(server.url(f"formgrader/submissions/{notebook_id}/"))
        page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 3",
                               timeout=90_000)
    assert not [u for u in blocked if "mathjax" in u.lower()], blocked


def test_feedback_math_renders_offline(graded_class, browser, request):
    """The feedback page, opened from disk with the network cut: its math is typeset by the
    packaged MathJax beside it, not left as TeX."""
    _, out, _, _ = graded_class
    page_file = out / "feedback" / "ada" / A1 / f"{A1}.html"
    with page_for(browser, request) as page:
        blocked = []
        page.route("http*://**", lambda route: (blocked.append(route.request.url), route.abort()))
        page.goto(page_file.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 3",
                               timeout=60_000)
        assert not [u for u in blocked if "mathjax" in u.lower()], blocked


def test_student_tex_in_feedback_is_shown_as_text_not_typeset(browser, request, tmp_path):
    """A feedback page whose report, test output and student markdown carry TeX from a student's
    exception: MathJax (the packaged copy, offline) typesets the instructor's math and nothing of
    the student's, which reads as typed."""
    from autograder.grading import feedback

    tex = r"$\int_0^1 x\,dx$ and \(a^2\)"
    nb = nbformat.v4.new_notebook()
    nb.cells.append(feedback.report_cell(A1, [("pad2d", 0.0, 3.0, f"pad2d raised ValueError: {tex}")],
                                         [f"cell '{tex}' is not in the assignment"]))
    nb.cells.append(nbformat.v4.new_markdown_cell("The instructor's math: $E = mc^2$ and $$\\sum_i x_i$$"))
    test = nbformat.v4.new_code_cell("check_pad2d(pad2d)")
    test.outputs = feedback.verdict_outputs(False, f"pad2d raised ValueError: {tex}", f"printed {tex}\n")
    nb.cells.append(test)
    notes = nbformat.v4.new_markdown_cell(f"my notes: {tex}")
    feedback.safe_markdown(notes)
    nb.cells.append(notes)
    page_file = tmp_path / "feedback" / "student" / A1 / f"{A1}.html"
    feedback.render(nb, page_file)
    if feedback.install_mathjax(tmp_path / "feedback") is None:
        pytest.skip("jupyter-server-mathjax is not installed")
    with page_for(browser, request) as page:
        page.route("http*://**", lambda route: route.abort())
        page.goto(page_file.as_uri())
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && "
                               "document.querySelectorAll('.MathJax, .MathJax_Display').length >= 2", timeout=60_000)
        typeset = page.evaluate("() => Array.from(document.querySelectorAll('script[type^=\"math/tex\"]'))"
                                ".map(s => s.textContent)")
        text = page.evaluate("() => document.body.innerText")
    assert typeset == ["E = mc^2", "\\sum_i x_i"], typeset
    assert text.count(tex) == 5, text  # the report's reason and note, the output twice, the notes


# ---------------------------------------------------------------------------------------------
# One grading road: nbgrader's own commands and formgrader's buttons grade through the judge.
# These run after the tests above on the same class (they add students to it).
# ---------------------------------------------------------------------------------------------

LEAKS = ("HIDDEN TESTS", "hidden_seed", "autograder/suites", "autograder/grading")


def nbgrader_cmd(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` as a user would type it in ``cwd`` (the environment's bin/ first)."""
    env = {**os.environ, "AUTOGRADER_SECRET": SECRET,
           "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def as_student(out: Path, home: Path, student: str, *args: str) -> subprocess.CompletedProcess:
    """nbgrader's student commands (fetch_assignment, submit, fetch_feedback) as ``student``, in
    their own folder with their own exchange cache."""
    home.mkdir(parents=True, exist_ok=True)
    return nbgrader_cmd([*args, f"--Exchange.root={out / 'exchange'}", "--CourseDirectory.course_id=convnets",
                         f"--student={student}", f"--Exchange.cache={home / '.cache'}"], home)


def results_of(out: Path, *students: str) -> dict:
    from autograder.grading.results import StudentResult

    return {s: StudentResult.load(out / "results" / A1 / f"{s}.json") for s in students}


def verdicts(result) -> tuple:
    return result.score, [(c.grade_id, c.points, c.reason) for c in result.cells]


def gradebook_scores(out: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:
        return {s.student.id: s.score for s in gb.find_assignment(A1).submissions}


def test_nbgrader_autograde_in_the_course_dir_is_the_judge(graded_class):
    """``nbgrader autograde --force`` typed in the graded class's folder regrades every student
    through the judge: the same verdicts, reasons and gradebook scores as ``grade``, the graded
    notebooks the judge's (report first, no hidden test)."""
    _, out, scores, _ = graded_class
    before = results_of(out, *scores)
    proc = nbgrader_cmd(["autograde", A1, "--force"], out)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"Grading ada, bo, cleo's {A1} with the judge, in the sandbox" in proc.stdout, proc.stdout[-3000:]
    after = results_of(out, *scores)
    assert {s: verdicts(r) for s, r in after.items()} == {s: verdicts(r) for s, r in before.items()}
    assert gradebook_scores(out) == scores
    for student in scores:
        nb = nbformat.read(out / "nbgrader" / "autograded" / student / A1 / f"{A1}.ipynb", as_version=4)
        assert nb.cells[0].id == "grading-report"
        text = nbformat.writes(nb)
        assert not [leak for leak in LEAKS if leak in text], student
    assert "Execute" not in proc.stdout and "Starting kernel" not in proc.stdout


def press(page, button, timeout: float = 240_000) -> str:
    """Click one of formgrader's buttons, wait for its answer dialog, close it; its text."""
    button.click()
    modal = page.locator("#success-modal, #error-modal").first
    modal.wait_for(timeout=timeout)
    text = modal.inner_text()
    modal.locator(".modal-footer button").click()
    modal.wait_for(state="detached")
    return text


def test_formgrader_buttons_grade_hostile_code_in_the_sandbox_and_release_our_feedback(
        graded_class, browser, request, tmp_path):
    """Two students fetch a1 and submit through nbgrader's exchange: one whose notebook writes files
    into the instructor's home and the class folder, one that looks for the hidden tests. The
    instructor presses formgrader's Collect, each student's Autograde, Generate Feedback and Release
    Feedback. Nothing is written outside the sandbox, no hidden test ran in the kernel, the verdicts
    are those of ``autograder grade`` on the same notebooks, and each student fetches exactly their
    own page: the grader's, with nothing of the hidden tests."""
    server, out, scores, full = graded_class
    a = Assignment(A1)
    cell, wrong = a.wrong(next(w.label for w in a.cat.WRONG_ANSWERS if w.exercise == a.target), a.target)
    mark = f"written-by-a-student-{os.getpid()}"
    targets = [Path.home() / mark, out / mark, out / "nbgrader" / mark, Path("/tmp") / mark]
    writes = a.nb({cell: wrong})
    writes.cells.append(nbformat.v4.new_code_cell(
        "import os\n"
        f"for path in {[str(t) for t in targets]!r} + [os.path.expanduser('~/{mark}'), '{mark}']:\n"
        "    try:\n        open(path, 'w').write('pwned')\n        print('wrote', path)\n"
        "    except OSError as exc:\n        print('could not write', path, type(exc).__name__)"))
    peeks = a.nb({cell: wrong})
    peeks.cells.append(nbformat.v4.new_code_cell(
        "history = '\\n'.join(get_ipython().user_ns.get('In', []))\n"
        "print('TESTS-IN-MY-KERNEL:', ('hidden' + '_seed') in history or ('check' + '_pad2d') in history)\n"
        f"for path in [{str(ROOT / 'solutions' / A1 / a.nb_file)!r}, "
        f"{str(out / 'nbgrader_config.py')!r}]:\n"
        "    try:\n        print(open(path).read()[:300])\n"
        "    except OSError as exc:\n        print('cannot read', path, type(exc).__name__)"))
    attacks = {"mallory": writes, "trudy": peeks}
    flat = tmp_path / "flat"
    for student, nb in attacks.items():
        home = tmp_path / student
        assert as_student(out, home, student, "fetch_assignment", A1).returncode == 0
        nbformat.write(nb, home / A1 / a.nb_file)
        proc = as_student(out, home, student, "submit", A1)
        assert proc.returncode == 0, proc.stdout[-2000:]
        (flat / student).mkdir(parents=True)
        nbformat.write(nb, flat / student / a.nb_file)
    # the same notebooks through the command line, for the verdicts to compare with
    reference = autograder("grade", A1, str(flat), "--out", str(tmp_path / "ref"), "--quiet")
    assert reference.returncode == 0, reference.stderr[-3000:]
    try:
        with page_for(browser, request) as page:
            page.goto(server.url("formgrader/manage_assignments"))
            row = page.locator("tr", has_text=A1).first
            row.locator(".collect a").wait_for(timeout=90_000)
            assert "Success" in press(page, row.locator(".collect a"))
            page.goto(server.url(f"formgrader/manage_submissions/{A1}"))
            for student in attacks:
                line = page.locator("tr", has_text=student).first
                line.locator(".autograde a").wait_for(timeout=90_000)
                text = press(page, line.locator(".autograde a"))
                assert "Successfully autograded" in text and "with the judge, in the sandbox" in text, text
            page.goto(server.url("formgrader/manage_assignments"))
            row = page.locator("tr", has_text=A1).first
            row.locator(".generate-feedback a").wait_for(timeout=90_000)
            assert "Success" in press(page, row.locator(".generate-feedback a"))
            assert "Success" in press(page, row.locator(".release-feedback a"))
        written = [t for t in targets if t.exists()]
        assert not written, written
    finally:
        for t in targets:
            t.unlink(missing_ok=True)
    ref = results_of(tmp_path / "ref", *attacks)
    got = results_of(out, *attacks)
    assert {s: verdicts(r) for s, r in got.items()} == {s: verdicts(r) for s, r in ref.items()}
    assert got["mallory"].score == a.max - a.points[a.target]
    book = gradebook_scores(out)
    assert {s: book[s] for s in attacks} == {s: r.score for s, r in got.items()}
    graded = {s: nbformat.writes(nbformat.read(out / "nbgrader" / "autograded" / s / A1 / a.nb_file, as_version=4))
              for s in attacks}
    assert "could not write" in graded["mallory"], graded["mallory"][-3000:]  # its cell ran, in the sandbox
    assert "TESTS-IN-MY-KERNEL: False" in graded["trudy"], graded["trudy"][-3000:]
    for student in attacks:
        page_file = out / "feedback" / student / A1 / f"{A1}.html"
        ours = page_file.read_text()
        assert "Grading report" in ours and "jupyter_server_mathjax" in ours
        assert not [leak for leak in LEAKS if leak in ours or leak in graded[student]], student
        proc = as_student(out, tmp_path / student, student, "fetch_feedback", A1)
        assert proc.returncode == 0, proc.stdout[-2000:]
        fetched = sorted((tmp_path / student / A1 / "feedback").rglob("*.html"))
        assert [p.read_text() for p in fetched] == [ours], (student, fetched)  # their own page, and only it
    # the fetched page opened through a Jupyter server, as from the Assignment List: math typeset offline
    view = out / "student-view" / A1 / "feedback" / "2026-01-01 10:00:00 UTC"
    view.mkdir(parents=True)
    shutil.copy(fetched[0], view / f"{A1}.html")
    with page_for(browser, request) as page:
        blocked = []
        page.route("http*://**", lambda route: route.continue_() if route.request.url.startswith(server.base)
                   else (blocked.append(route.request.url), route.abort()))
        page.goto(server.url(urllib.parse.quote(f"files/student-view/{A1}/feedback/{view.name}/{A1}.html")))
        page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 3",
                               timeout=60_000)
    assert not [u for u in blocked if "mathjax" in u.lower()], blocked


# ---------------------------------------------------------------------------------------------
# The self-learner: the lectures as a site
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``make site``, into a folder of the test's own."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "_build" / "html"


def offline_page(page, blocked: list):
    page.route("http*://**", lambda route: (blocked.append(route.request.url), route.abort()))


def test_site_follows_the_arc(site, browser, request):
    lectures = sorted(p.stem for p in (ROOT / "lectures").glob("[0-9][0-9]_*.ipynb"))
    with page_for(browser, request) as page:
        offline_page(page, [])
        page.goto((site / "intro.html").as_uri())
        nav = [a.get_attribute("href") for a in page.locator("nav.bd-links a").all()]
        lecture_links = [h for h in nav if h and "lectures/" in h]
        assert [Path(h).stem for h in lecture_links] == lectures, nav
        assert any("assignments/" in (h or "") for h in nav), nav


def test_site_lecture_math_figures_and_links_work_offline(site, browser, request):
    blocked: list = []
    with page_for(browser, request) as page:
        offline_page(page, blocked)
        page.goto((site / "lectures" / "02_convolution.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('.MathJax, .MathJax_Display').length > 5",
                               timeout=60_000)
        images = page.evaluate("[...document.querySelectorAll('article img')].map(i => [i.src, i.naturalWidth])")
        assert images and all(width > 0 for _, width in images), images
        links = page.evaluate("[...document.querySelectorAll('article a')].map(a => a.href)"
                              ".filter(h => h.startsWith('file:') && h.includes('/lectures/'))")
        for link in links:
            assert Path(urllib.request.url2pathname(link.split("#")[0][len("file://"):])).is_file(), link
    assert not [u for u in blocked if "mathjax" in u.lower()], blocked


HIDDEN_ANSWERS = """() => [...document.querySelectorAll('div.cell.tag_hide-cell, div.cell.tag_hide-output')]
    .map(cell => {
        const parts = [...cell.querySelectorAll(cell.classList.contains('tag_hide-cell')
                                                ? '.cell_input, .cell_output' : '.cell_output')];
        return {answer: cell.classList.contains('tag_hide-cell'), parts: parts.length,
                closed: parts.every(el => { const d = el.closest('details'); return d && !d.open && cell.contains(d); }),
                shown: parts.some(el => el.checkVisibility()),
                text: (cell.querySelector('pre') || cell).innerText.slice(0, 60)};
    })"""


@pytest.mark.parametrize("stem", sorted(p.stem for p in (ROOT / "lectures").glob("[0-9][0-9]_*.ipynb")))
def test_site_keeps_answers_behind_a_click(site, browser, request, stem):
    """Every "Try it." answer (code, outputs and the answer in words) and every "Predict, then run."
    result is on the page inside a closed <details>, not shown until the reader opens it."""
    cells = nbformat.read(ROOT / "lectures" / f"{stem}.ipynb", as_version=4).cells
    answers = sum(c.cell_type == "code" and c.source.lstrip().startswith("# Answer") for c in cells)
    prompts = sum(c.cell_type == "markdown" and c.source.lstrip().startswith("**Predict, then run.**") for c in cells)
    in_words = sum(c.cell_type == "markdown" and c.source.startswith("<details>") for c in cells)
    with page_for(browser, request) as page:
        offline_page(page, [])
        page.goto((site / "lectures" / f"{stem}.html").as_uri())
        hidden = page.evaluate(HIDDEN_ANSWERS)
        assert [h["answer"] for h in hidden].count(True) == answers and len(hidden) == answers + prompts, hidden
        for h in hidden:
            assert h["parts"] and h["closed"] and not h["shown"], h
        words = page.locator("article details:not(.hide)")
        assert words.count() == in_words
        for k in range(in_words):
            assert not words.nth(k).locator("p").first.is_visible()
        result = page.locator("div.cell.tag_hide-output").first     # one click opens a result
        result.locator("summary").click()
        result.locator(".cell_output").first.wait_for(state="visible", timeout=10_000)


# ---------------------------------------------------------------------------------------------
# The self-learner: a lecture's widget in JupyterLab
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lectures_lab(tmp_path_factory):
    """Plain JupyterLab on a copy of the lectures, as a self-learner opens them."""
    home = tmp_path_factory.mktemp("lectures-lab")
    shutil.copytree(ROOT / "lectures", home / "lectures")
    env = {**os.environ, "HOME": str(home)}  # no user-level Jupyter settings
    server = Server([sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={home}", "--allow-root"], home, env)
    yield server
    server.stop()


def run_cell_with(page, text: str) -> None:
    """Run the code cell whose source contains ``text`` (Shift+Enter) and wait until it has finished."""
    cell = page.locator(".jp-CodeCell", has_text=text).first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputPrompt").element_handle()
    page.wait_for_function("el => /\\[\\d+\\]/.test(el.innerText)", arg=prompt, timeout=90_000)


PICTURE_BYTES = """async () => {
    const img = document.querySelector('img.widget-image');
    if (!img || !img.src) return '';
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    let hash = 0;
    for (const b of bytes) hash = (hash * 31 + b) >>> 0;
    return bytes.length + ':' + hash;
}"""


def picture_changes(page, before: str) -> str:
    """Wait until the playground's picture holds other PNG bytes than ``before``; return its digest."""
    for _ in range(600):
        now = page.evaluate(PICTURE_BYTES)
        if now and now != before:
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"the picture did not change from {before!r}")


def test_kernel_playground_redraws_when_the_preset_changes(lectures_lab, browser, request):
    """Lecture 02's playground in a real JupyterLab: its widget appears with a picture, and picking
    another preset in the menu fills the weight grid and redraws the picture."""
    with page_for(browser, request) as page:
        open_notebook(page, lectures_lab, "lectures/02_convolution.ipynb")
        run_first_code_cell(page)                         # imports and the photo
        run_cell_with(page, "def kernel_figure(")
        run_cell_with(page, "import ipywidgets as widgets")
        select = page.locator(".widget-dropdown select")
        select.wait_for(timeout=60_000)
        weights = page.locator(".widget-text input")
        assert weights.count() == 9 and weights.nth(1).input_value() == "-1"   # sharpen: 0 -1 0 ...
        seen = [picture_changes(page, "")]
        for name, first_row in [("Sobel x", ["-1", "0", "1"]), ("box blur", ["0.1111"] * 3)]:
            select.select_option(label=name)
            seen.append(picture_changes(page, seen[-1]))
            assert [weights.nth(k).input_value() for k in range(3)] == first_row, name
        assert len(set(seen)) == 3, seen
        assert page.locator("img.widget-image").count() == 1
        assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
