"""nbgrader's formgrader on a graded class: ``python -m autograder formgrader OUT``.

``grade … --out OUT`` leaves what formgrader needs beside the grades: ``OUT/nbgrader_config.py``
(the course directory under ``OUT/nbgrader``, the instructor's ``solutions/`` as its source, the
gradebook the run wrote, a course id and an exchange under ``OUT/exchange``; readable by the
instructor only, since a database URL may hold a password), every release of the course in the
exchange's ``outbound/`` (so formgrader lists them as released, not as drafts) and each graded student's notebooks in ``OUT/nbgrader/submitted/`` (so its submission
counts agree with the grades). :func:`serve` starts JupyterLab in ``OUT`` with the environment's
own ``bin/`` first on PATH (nbgrader shells out to ``alembic``), whether or not the environment
is activated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..course import Course, UsageError
from . import late

COURSE_ID = "convnets"
# A submission's files from nbgrader's exchange besides its notebooks: when it was handed in, and the
# secret under which its feedback is released to that student alone.
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")
CONFIG = '''"""formgrader on this graded class (written by `python -m autograder grade`; rewritten by each run).

Open it with:  python -m autograder formgrader {out}
"""
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = {root!r}
c.CourseDirectory.source_directory = {source!r}
c.CourseDirectory.release_directory = {release!r}
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = {feedback!r}
c.CourseDirectory.db_url = {db_url!r}
c.Exchange.root = {exchange!r}

# One grading road (autograder/grading/road.py): formgrader's Autograde buttons and `nbgrader autograde`
# here grade through the judge and the sandbox (never nbgrader's Execute: no hidden test runs in a
# student's kernel); Generate Feedback writes the grader's sanitised pages; Release Feedback hands
# each student their own through the exchange.
{route}'''


def prepare(out: Path, course: Course, db_url: str, assignment: str, graded: dict[str, Path],
            settings: dict | None = None, stamps: dict | None = None) -> None:
    """Write OUT's formgrader config (also in ``OUT/nbgrader``, the course root, so that nbgrader
    run there grades through the judge too), remember ``settings`` (what ``grade`` ran with) for
    grades started from nbgrader, put the course's releases into OUT's exchange, and copy the
    ``graded`` students' notebooks of ``assignment`` (student -> folder) into ``OUT/nbgrader/submitted``,
    with the submission's exchange files and a ``timestamp.txt`` holding the submission time the
    gradebook has (``stamps``: student -> time, or None): formgrader counts a submission as
    autograded only when the two agree."""
    from . import road

    root = out / "nbgrader"
    text = CONFIG.format(
        out=out, course_id=COURSE_ID, root=str(root), source=str(course.solutions),
        release=str(course.assignments), feedback=str(out / "feedback"), db_url=db_url,
        exchange=str(out / "exchange"), route=road.route_config(out, course.root))
    root.mkdir(parents=True, exist_ok=True)
    for config in (out / "nbgrader_config.py", root / "nbgrader_config.py"):
        config.touch(mode=0o600)
        config.chmod(0o600)  # the database URL may hold a password
        config.write_text(text)
    if settings is not None:
        road.save_settings(out, assignment, settings)
    for released in course.assignment_ids():  # what students have: every release, not a draft
        if not (course.assignments / released).is_dir():
            continue
        outbound = out / "exchange" / COURSE_ID / "outbound" / released
        shutil.rmtree(outbound, ignore_errors=True)
        outbound.mkdir(parents=True)
        for path in sorted((course.assignments / released).iterdir()):
            if path.is_file():
                shutil.copy2(path, outbound / path.name)
    for name in ("inbound", "feedback"):
        (out / "exchange" / COURSE_ID / name).mkdir(exist_ok=True)
    for student, folder in graded.items():
        dest = root / "submitted" / student / assignment
        if dest.resolve() == folder.resolve():  # graded from here (formgrader's Autograde, nbgrader autograde)
            continue
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for name in course.notebooks(assignment):
            src = folder / f"{name}.ipynb"
            if src.is_file() and not src.is_symlink():
                shutil.copyfile(src, dest / src.name)
        for name in EXCHANGE_FILES:  # what nbgrader's release_feedback needs to hand the page back
            src = folder / name
            if src.is_file() and not src.is_symlink() and src.stat().st_size < 200:
                shutil.copyfile(src, dest / name)
        when = (stamps or {}).get(student)
        if when is not None:  # the time the gradebook has, to the microsecond
            (dest / "timestamp.txt").write_text(late.exact(when))


def check(out: Path) -> Path:
    out = out.expanduser().resolve()
    if not (out / "nbgrader_config.py").is_file():
        raise UsageError(f"{out} holds no graded class (no nbgrader_config.py); give the --out folder "
                         "of a `grade` run")
    if not routed(out):
        raise UsageError(f"{out / 'nbgrader_config.py'} does not route nbgrader's Autograde and feedback to the "
                         "judge (written by an older version, or edited): run `python -m autograder grade` on "
                         "this class again to rewrite it")
    return out


def routed(out: Path) -> bool:
    """OUT's nbgrader config (read as nbgrader reads it) sends Autograde and feedback the judge's way."""
    from traitlets.config.loader import PyFileConfigLoader

    from . import road

    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=str(out)).load_config()
    except Exception:  # noqa: BLE001 - unreadable: not routed
        return False
    for key, want in road.ROUTE.items():
        section, name = key.split(".")
        if name not in config[section] or config[section][name] != want:
            return False
    return bool(config.Judge.get("out")) and bool(config.Judge.get("course"))


# formgrader's grading page asks nbconvert's mathjax() macro for MathJax without a URL, which means
# a CDN. This macro, first on nbconvert's template path, defaults to the packaged copy the server
# itself serves (jupyter-server-mathjax), so the page's math renders offline.
MATHJAX_MACRO = """{%- macro mathjax(url="/static/jupyter_server_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe") -%}
    <script type="text/x-mathjax-config">
    MathJax.Hub.Config({
        tex2jax: {inlineMath: [['$','$'], ["\\\\(","\\\\)"]], displayMath: [['$$','$$'], ["\\\\[","\\\\]"]],
                  processEscapes: true, processEnvironments: true},
        "HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web", imageFont: null},
        displayAlign: 'center', messageStyle: 'none'
    });
    </script>
    <script src="{{url}}"> </script>
{%- endmacro %}
"""


def serve(out: Path, port: int | None = None, browser: bool = True) -> int:
    """JupyterLab on OUT with formgrader (Nbgrader menu → Formgrader); returns its exit status."""
    out = check(out)
    from ..workspace import lab_command, with_bin

    data = out / "nbgrader" / "home" / "formgrader-data"
    macro = data / "nbconvert" / "templates" / "base" / "mathjax.html.j2"
    macro.parent.mkdir(parents=True, exist_ok=True)
    macro.write_text(MATHJAX_MACRO)
    env = with_bin(os.environ)
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(data), os.environ.get("JUPYTER_PATH", "")) if p)
    print(f"formgrader on {out}: open JupyterLab's Nbgrader menu → Formgrader (Ctrl-C stops it)", flush=True)
    return subprocess.call(lab_command(out, port, browser), cwd=out, env=env)


def counts(out: Path) -> dict:
    """What formgrader will show, read the way it reads it (for the CLI's summary and the tests)."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(out)).load_config()
    here = os.getcwd()
    os.chdir(out)
    try:
        api = NbGraderAPI(config=config)
        return [{"name": a["name"], "status": a["status"], "num_submissions": a["num_submissions"]}
                for a in api.get_assignments()]
    finally:
        os.chdir(here)
