"""A student's own copies (fetch) and the commands that open JupyterLab: their bad input is one line."""

from __future__ import annotations

import json
import subprocess

from autograder.workspace import STUDENT_HIDDEN, STUDENT_SERVER_OFF, student_config

from .support import ROOT, autograder

A1 = "a1_images_and_convolution"
A2 = "a2_conv_layer"


def cli(*args: str) -> subprocess.CompletedProcess:
    return autograder(*args, timeout=120)


def test_fetch_copies_the_release_and_never_overwrites(tmp_path):
    """DIR is the parent: each assignment fetched there gets its own folder, and a second fetch of
    the same assignment keeps the student's work and says so, about that assignment's folder."""
    into = tmp_path / "mine"
    proc = cli("fetch", A1, str(into))
    assert proc.returncode == 0 and proc.stdout.strip() == str(into / A1)
    copied = into / A1 / f"{A1}.ipynb"
    assert copied.read_bytes() == (ROOT / "assignments" / A1 / f"{A1}.ipynb").read_bytes()
    copied.write_text("my work")
    other = cli("fetch", A2, str(into))  # another assignment into the same DIR: beside the first
    assert other.returncode == 0 and other.stdout.strip() == str(into / A2), other.stderr
    assert (into / A2 / f"{A2}.ipynb").is_file() and copied.read_text() == "my work"
    again = cli("fetch", A1, str(into))
    assert again.returncode == 2, again.stderr
    assert f"{into / A1} already exists: your copy of {A1} there is kept" in again.stderr, again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and copied.read_text() == "my work"
    assert sorted(p.name for p in into.iterdir()) == sorted([A1, A2])


def test_fetch_bad_input_is_one_line(tmp_path):
    for args, words in [(("fetch", "a9_nothing", str(tmp_path / "x")), "unknown assignment"),
                        (("fetch", A1, str(ROOT / "assignments" / A1 / "inside")), "inside the release"),
                        (("fetch", A1, str(ROOT / "assignments")), "inside the release")]:
        proc = cli(*args)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (ROOT / "assignments" / A1 / "inside").exists()


def test_formgrader_on_a_folder_that_was_not_graded_is_one_line(tmp_path):
    proc = cli("formgrader", str(tmp_path))
    assert proc.returncode == 2 and "holds no graded class" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_student_config_hides_the_instructor_panels(tmp_path):
    from autograder.course import Course

    course = Course(tmp_path)
    config = student_config(course)
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    server = json.loads((config / "jupyter_server_config.json").read_text())
    assert set(page["disabledExtensions"]) == set(STUDENT_HIDDEN)
    assert "@jupyter/nbgrader:validate-assignment" not in page["disabledExtensions"]  # Validate stays
    assert server["ServerApp"]["jpserver_extensions"] == {name: False for name in STUDENT_SERVER_OFF}
