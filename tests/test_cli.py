"""The command line: help for every command, validate for students, clear errors for bad input."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import pytest

from autograder.cli import main
from autograder.grading.validate import HIDDEN
from autograder.grading.notebooks import student_version

from .support import ROOT, release_nb, source_nb

A1 = "a1_images_and_convolution"


def run(*args, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


@pytest.mark.parametrize("command", ["release", "grade", "validate", "demo", "secret"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: python -m autograder" in capsys.readouterr().out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("release", "grade", "validate", "demo", "secret"):
        assert command in out


def test_missing_arguments_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["grade", A1])
    assert info.value.code == 2
    assert "required" in capsys.readouterr().err


def test_wrong_course_folder(tmp_path, capsys):
    assert main(["--course", str(tmp_path), "release"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path.resolve()} is not a course folder (it needs nbgrader_config.py and solutions/)"


def test_course_found_from_a_subfolder():
    proc = run("release", "--help", cwd=ROOT / "tests")
    assert proc.returncode == 0


def test_bad_timeouts(capsys, tmp_path):
    assert main(["grade", A1, str(tmp_path), "--out", str(tmp_path / "o"), "--timeout", "0"]) == 2
    assert "must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_reports_pass_and_fail(tmp_path):
    """Does validate pass a correct notebook (exit 0) and name each failing exercise of a blank one
    with its points and whole message (exit 1), a total on the visible tests and what the hidden ones
    add, and no progress line when stderr is not a terminal?"""
    good, blank = tmp_path / "good.ipynb", tmp_path / "blank.ipynb"
    nbformat.write(student_version(release_nb(A1), source_nb(A1)), good)
    nbformat.write(release_nb(A1), blank)
    ok = run("validate", str(good))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.endswith("visible tests: 25 of 25 points; all passed.\n" + HIDDEN + "\n"), ok.stdout
    assert "correlate2d (4 points)," in ok.stdout and "FAILED" not in ok.stdout
    assert re.search(r"\ngood.ipynb \(validated in \d+ s\)\n", ok.stdout), ok.stdout
    bad = run("validate", str(blank))
    assert bad.returncode == 1 and bad.stderr == ""
    assert ("  FAILED  correlate2d (0 of 4 points)\n"
            "          correlate2d(worked example) is not implemented yet (it raises\n"
            "              NotImplementedError).\n"
            "            Hint: replace the `raise NotImplementedError()` line with your code.\n") in bad.stdout
    assert bad.stdout.count("FAILED") == 10 and "passed:" not in bad.stdout
    assert "\nvisible tests: 0 of 25 points; 10 exercises fail (25 points).\n" in bad.stdout
    assert max(len(line) for line in bad.stdout.splitlines()) <= 80


def outcome(exercise, points, message=None, restricted=False):
    from autograder.grading.validate import Outcome

    return Outcome(exercise, points, message is None, message, restricted)


def test_validate_report_groups_wraps_and_totals():
    """The report: each failure under its exercise and points with its whole message wrapped (every
    word kept, in order, no line past the width), the passed ones listed without breaking an entry,
    the notes, the total and the hidden part's sentence last."""
    from autograder.grading.validate import report

    shape = ("hwc_to_chw(image of shape (4, 5, 3)): wrong shape: expected (3, 4, 5), got (3, 5, 4). The number of "
             "elements matches: a reshape where a transpose was needed, or axes in the wrong order?\n  Hint: move "
             "the channel axis with a transpose (np.transpose / np.moveaxis); a reshape keeps the memory order and "
             "scrambles the pixels.")
    outcomes = [outcome("pad2d", 3, "pad2d uses np.pad, which this exercise forbids (cell 12, line 3).", True),
                outcome("layout", 2, shape), *(outcome(f"exercise_number_{i}", i) for i in range(1, 9))]
    text = report("a1.ipynb", outcomes, ["test cell pad2d was edited; the instructor's version was run"], 75.2)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert lines[0] == "  FAILED  pad2d (0 of 3 points)" and lines[2] == "  FAILED  layout (0 of 2 points)"
    layout = lines[3:lines.index(next(line for line in lines if line.startswith("  passed:")))]
    assert " ".join(line.strip() for line in layout) == " ".join(shape.split())  # wrapped, nothing clipped
    assert layout[0].startswith(" " * 10 + "hwc_to_chw") and layout[1].startswith(" " * 14 + "got (3, 5, 4)")
    hint = next(i for i, line in enumerate(layout) if "Hint:" in line)
    assert layout[hint].startswith(" " * 12 + "Hint: move") and layout[hint + 1].startswith(" " * 16)
    passed = [line for line in lines if line.startswith("  passed:") or line.startswith("      exercise")]
    assert re.findall(r"exercise_number_\d \(\d points?\)", " ".join(passed)) == [
        f"exercise_number_{i} ({i} point{'s' if i > 1 else ''})" for i in range(1, 9)]
    assert "  note: test cell pad2d was edited; the instructor's version was run" in lines
    assert lines[-4:] == ["", "a1.ipynb (validated in 1 min 15 s)",
                          "visible tests: 36 of 41 points; 2 exercises fail (5 points).", HIDDEN]


def test_validate_shows_elapsed_time_on_a_terminal_only():
    """A progress line with the seconds so far, redrawn in place on a terminal and cleared at the end;
    nothing on a pipe or a file."""
    import io
    import time

    from autograder.grading.validate import ticking

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Terminal(), io.StringIO()
    with ticking("validating a1.ipynb", tty), ticking("validating a1.ipynb", pipe):
        time.sleep(1.3)
    assert pipe.getvalue() == ""
    assert tty.getvalue() == "\rvalidating a1.ipynb… 0 s \rvalidating a1.ipynb… 1 s \r\x1b[K"


def hostile_copies(folder) -> tuple:
    """(marker, a1's solution saved as a copy whose every test cell was rewritten, a notebook of no
    assignment whose one "test cell" is its own): each rewritten test would leave ``marker``."""
    from autograder.grading.notebooks import nbgrader_meta

    marker = folder / "ran-outside-the-sandbox"
    evil = f"open({str(marker)!r}, 'w').write('the notebook\\'s own test code ran as the grader')"
    copy = student_version(release_nb(A1), source_nb(A1))
    for cell in copy.cells:
        if nbgrader_meta(cell).get("grade") and not nbgrader_meta(cell).get("solution"):
            cell.source = evil
    meta = {"nbgrader": {"grade": True, "grade_id": "mine", "locked": True, "points": 1, "schema_version": 3,
                         "solution": False, "task": False}}
    own = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(evil, metadata=meta)])
    return marker, copy, own


NO_RELEASE = ("scratch.ipynb is none of the course's assignment notebooks (no cell carries an exercise's grade_id, "
              "and its name is no assignment's): Validate runs only the instructor's tests, so validate the "
              "notebook you fetched for the assignment")


def test_validate_finds_the_release_by_grade_ids_whatever_the_file_is_called(tmp_path):
    """The release is the one whose grade_ids the cells carry; the name counts only when no cell has
    any (a copy's suffix dropped); otherwise one line, never the notebook's own cells."""
    import json

    from autograder.course import Course
    from autograder.grading.validate import NoRelease, assignment_of

    course, release = Course(ROOT), ROOT / "assignments" / A1 / f"{A1}.ipynb"
    mine = json.loads(nbformat.writes(student_version(release_nb(A1), source_nb(A1))))
    for name in ("whatever.ipynb", f"{A1} (1).ipynb", "a2_conv_layer.ipynb"):
        assert assignment_of(tmp_path / name, mine, course) == (A1, release), name
    bare = {"cells": [{"cell_type": "code", "metadata": {}, "source": "x = 1"}]}
    for name in (f"{A1}.ipynb", f"{A1} (2).ipynb", f"{A1}-Copy1.ipynb"):
        assert assignment_of(tmp_path / name, bare, course) == (A1, release), name
    with pytest.raises(NoRelease) as info:
        assignment_of(tmp_path / "scratch.ipynb", bare, course)
    assert str(info.value) == NO_RELEASE
    with pytest.raises(NoRelease, match="no course folder found"):
        assignment_of(tmp_path / "scratch.ipynb", mine, None)


@pytest.mark.slow
def test_validate_runs_only_the_instructors_tests(tmp_path):
    """A copy saved under another name, its test cells rewritten: is it validated against a1's release
    (found by its cells' grade_ids) without running a line of its own tests? And is a notebook of no
    assignment refused in one line, its "tests" never run?"""
    marker, copy, own = hostile_copies(tmp_path)
    nbformat.write(copy, tmp_path / f"{A1} (1).ipynb")
    nbformat.write(own, tmp_path / "scratch.ipynb")
    proc = run("validate", str(tmp_path / f"{A1} (1).ipynb"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "visible tests: 25 of 25 points; all passed." in proc.stdout
    assert "note: test cell pad2d was edited; the instructor's version was run" in proc.stdout
    refused = run("validate", str(tmp_path / "scratch.ipynb"))
    assert (refused.returncode, refused.stdout, refused.stderr) == (2, "", f"error: {NO_RELEASE}\n")
    assert not marker.exists()


def test_validate_unreadable(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    proc = run("validate", str(broken))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: broken.ipynb is not valid JSON")


def test_secret_is_made_once_kept_private_and_settable(tmp_path):
    """Is the course secret created on first use (owner-only), stable, and replaceable by the instructor?"""
    import shutil

    import os

    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_SECRET")}

    def run(*args):
        return globals()["run"](*args, env=env)

    first = run("--course", str(course), "secret")
    assert first.returncode == 0, first.stderr
    path = course / "work" / "course_secret"
    assert path.is_file() and (path.stat().st_mode & 0o777) == 0o600
    assert str(path) in first.stdout and path.read_text().strip() not in first.stdout  # never printed
    value = path.read_text()
    assert run("--course", str(course), "secret").returncode == 0 and path.read_text() == value
    assert run("--course", str(course), "secret", "--set", "short").returncode == 2
    assert run("--course", str(course), "secret", "--set", "a-new-secret-for-this-term").returncode == 0
    assert path.read_text().strip() == "a-new-secret-for-this-term"
    assert run("--course", str(course), "secret", "--new").returncode == 0
    assert path.read_text().strip() not in ("a-new-secret-for-this-term", value.strip())
