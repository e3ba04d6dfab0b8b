"""The toolbar's Validate in JupyterLab: a real Jupyter server, nbgrader's Validate endpoint, our answer.

A Jupyter server is started on a free local port with the course's environment; the test posts
to ``/assignments/validate`` exactly as nbgrader's labextension does when a student presses the
button, and checks that the dialog's content is the course's own validation (the same verdicts
as ``python -m autograder validate``), not nbgrader's plain one.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from pathlib import Path

import nbformat
import pytest

from autograder.grading.notebooks import solution_sources, student_version
from autograder.lab import DIALOG_STYLE

from .support import ROOT, free_port, release_nb, source_nb, wait_for_jupyter
from .test_cli import NO_RELEASE, hostile_copies

pytestmark = pytest.mark.slow

A1 = "a1_images_and_convolution"
TOKEN = "validate-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(root / ".runtime"),
           "AUTOGRADER_COURSE": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}",
                             f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1", "--ServerApp.open_browser=False",
                             f"--IdentityProvider.token={TOKEN}", "--ServerApp.port_retries=0", "--allow-root"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    if not wait_for_jupyter(base, TOKEN, proc, 60):
        proc.kill()
        pytest.fail(f"jupyter server did not start: {proc.stderr.read()[-2000:]}")
    yield root, base
    proc.terminate()
    proc.wait(timeout=30)


def press_validate(base: str, path: str) -> dict:
    """What nbgrader's toolbar button does: POST the notebook's path, read the JSON answer."""
    req = urllib.request.Request(f"{base}/assignments/validate?path={path}", data=b"", method="POST",
                                 headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return json.loads(resp.read())


def dialog(answer: dict) -> tuple[str, str]:
    """(summary, report) of the one entry the course's answer holds; the report is the dialog's HTML."""
    assert answer["success"] is True, answer
    [entry] = answer["value"]["failed"]  # one entry: nbgrader's header appears once (and is hidden)
    assert entry["error"].startswith(DIALOG_STYLE)
    return entry["source"], entry["error"][len(DIALOG_STYLE):]


def test_validate_button_runs_the_course_validation(server):
    """Does the button say Success with the total on the solution, and name each failing exercise with
    its points and the check's message on a broken copy and on the blank release — the messages the
    grade gives —, with what the hidden tests add and how long it took, every line wrapped?"""
    root, base = server
    source, release = source_nb(A1), release_nb(A1)
    wrong = solution_sources(source)["correlate2d_code"].replace("i * stride", "i", 1)
    for name, nb in {"good": student_version(release, source), "blank": release,
                     "broken": student_version(release, source, {"correlate2d_code": wrong})}.items():
        (root / name).mkdir()
        nbformat.write(nb, root / name / f"{A1}.ipynb")
    summary, report = dialog(press_validate(base, f"good/{A1}.ipynb"))
    assert re.fullmatch(r"Success! Your notebook passes all the visible tests: 25 of 25 points\.\n"
                        r"The hidden tests run at grading time on more cases; they decide the same\npoints\.\n"
                        r"Validated in \d+ s\.", summary), summary
    assert report == "<b>" + html.escape(summary).replace("\n", "</b>\n", 1)
    summary, report = dialog(press_validate(base, f"blank/{A1}.ipynb"))
    assert summary.startswith("visible tests: 0 of 25 points; 10 exercises fail (25 points).\n")
    assert report.count("<b>") == 11 and "\n\n<b>layout (0 of 2 points)</b>\n    hwc_to_chw(" in report
    assert " ".join(report.split()).count("is not implemented yet") == 10 and "passed:" not in report
    assert all(len(html.unescape(line)) <= 76 for line in report.replace("<b>", "").replace("</b>", "").splitlines())
    summary, report = dialog(press_validate(base, f"broken/{A1}.ipynb"))
    assert summary.startswith("visible tests: 19 of 25 points; 2 exercises fail (6 points).\n"), summary
    assert "<b>correlate2d (0 of 4 points)</b>" in report and "<b>convolve2d (0 of 2 points)</b>" in report
    assert "layout (" not in report
    assert "values differ from the reference" in " ".join(report.split()) and "\npassed: layout, dtype_range," in report


def test_validate_button_runs_only_the_instructors_tests(server):
    """The toolbar's road: a renamed copy whose test cells were rewritten passes on a1's release
    without its own tests running; a notebook of no assignment gets one line, its "tests" unrun."""
    root, base = server
    marker, copy, own = hostile_copies(root)
    (root / "hostile").mkdir()
    nbformat.write(copy, root / "hostile" / f"{A1} (1).ipynb")
    nbformat.write(own, root / "hostile" / "scratch.ipynb")
    summary, _ = dialog(press_validate(base, f"hostile/{A1} (1).ipynb".replace(" ", "%20")))
    assert summary.startswith("Success! Your notebook passes all the visible tests: 25 of 25 points.")
    assert press_validate(base, "hostile/scratch.ipynb") == {"success": False, "value": NO_RELEASE}
    assert not marker.exists()


def test_validate_button_refuses_paths_outside_the_server_root(server):
    _, base = server
    with pytest.raises(urllib.error.HTTPError) as info:
        press_validate(base, "../../etc/passwd")
    assert info.value.code == 403


def test_install_enables_the_server_extension_and_the_labextension(tmp_path):
    """``python -m autograder.lab`` (what ``make`` runs after an editable install) enables the server
    extension and puts the labextension where JupyterLab looks, as complete as a wheel puts it
    (pyproject's data-files name the same files)."""
    import tomllib

    from autograder.lab import LABEXTENSION, install

    config = install(str(tmp_path))
    assert json.loads(config.read_text()) == {"ServerApp": {"jpserver_extensions": {"autograder.lab": True}}}
    target = tmp_path / "share" / "jupyter" / "labextensions" / LABEXTENSION
    package = json.loads((target / "package.json").read_text())
    assert package["name"] == LABEXTENSION and (target / package["jupyterlab"]["_build"]["load"]).is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    wheel = {f"{folder}/{Path(f).name}" for folder, files in data.items() for f in files if LABEXTENSION in folder}
    here = {str(p.relative_to(tmp_path)) for p in target.rglob("*") if p.is_file()}
    assert wheel == here
