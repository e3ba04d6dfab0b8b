"""Time and space the grader controls, through the real ``grade`` command.

* Is a4's training limited by the kernel's CPU time, measured from outside, so that one honest
  recipe gets the same score on an idle and on a loaded machine, while a run that computes too
  long, sleeps, or hands its work to child processes is stopped at the limit?
* Do the cells a student added share one small time budget (six ``sleep(17)`` cells delay a
  grade by seconds, not minutes), without costing an honest scratch cell anything?
* Are /tmp and the working folder capped in total, not only per file?
* Does grading work with the course's venv reached through a symbolic link, and does a run whose
  kernels cannot start stop before grading anyone?
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.grading.sandbox import BUBBLEWRAP, isolation

from .classes import Assignment
from .support import ROOT, autograder_command, autograder_env

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox and /proc are Linux's")]
boxed = pytest.mark.skipif(isolation() != BUBBLEWRAP, reason="bubblewrap cannot make namespaces here")

A1, A4 = "a1_images_and_convolution", "a4_lenet"
LIMIT = 10  # a4's CPU limit for these tests (the release's is 60 s): small, so that the tests are short
BURNERS = 4


def grade(assignment: str, subs: Path, out: Path, *extra: str, env: dict | None = None,
          python: str | None = None, timeout: float = 1200) -> subprocess.CompletedProcess:
    command = autograder_command("grade", assignment, str(subs), "--out", str(out), "--quiet", *extra)
    if python:
        command[0] = python
    return subprocess.run(command, cwd=ROOT, env=env or autograder_env(), capture_output=True, text=True,
                          timeout=timeout)


def results(out: Path, assignment: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (out / "results" / assignment).glob("*.json")}


def lost(result: dict) -> dict[str, str]:
    return {c["grade_id"]: c["reason"] for c in result["cells"] if c["points"] < c["max_points"]}


def small_limit(folder: Path) -> dict[str, str]:
    """An environment whose grading processes give a4's train_lenet LIMIT s of CPU time (a
    sitecustomize in the grader's processes; the kernels run ``python -S`` and never see it)."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(f"import autograder.suites.a4_lenet as _s\n_s.TIME_LIMIT = {LIMIT}\n")
    env = autograder_env()
    env["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])
    return env


def with_training(a: Assignment, body: str) -> object:
    """a4's solution with ``body`` as the start of train_lenet."""
    code = a.body("lenet_training_code", body)
    return a.file(a.nb({"lenet_training_code": code}))


@boxed
def test_training_is_limited_by_cpu_time_not_by_the_wall_clock(tmp_path):
    """An honest recipe (10 epochs: about 6 s of CPU against a 10 s limit) keeps lenet_training on
    an idle machine and under four CPU burners, each in its own session (autogroup would otherwise
    shield the kernel from them): under them it takes well over 10 s of wall time, which the
    wall-clock limit this replaces charged as a failure. A run that computes past the limit, one
    that sleeps, and one whose child processes do the computing are each stopped at the limit."""
    a = Assignment(A4)
    honest = a.sol["lenet_training_code"].replace("for epoch in range(6):", "for epoch in range(10):")
    assert honest != a.sol["lenet_training_code"]
    subs = tmp_path / "subs"
    a.file(a.nb({"lenet_training_code": honest}))(subs / "honest")
    with_training(a, "while True:\n    pass")(subs / "computes_forever")
    with_training(a, "import time\ntime.sleep(600)")(subs / "sleeps")
    with_training(a, "import subprocess, sys\nkids = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) "
                     "for _ in range(2)]\nkids[0].wait()")(subs / "children_compute")
    env = small_limit(tmp_path / "site")
    out = tmp_path / "idle"
    proc = grade(A4, subs, out, "--workers", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    got = results(out, A4)
    full, training = a.max, a.points["lenet_training"]
    assert got["honest"]["score"] == full, lost(got["honest"])
    used = float(got["honest"]["message"].split("train_lenet used ")[1].split(" s")[0])
    assert 0 < used < LIMIT and f"of its {LIMIT} s CPU limit" in got["honest"]["message"]
    for student, words in [("computes_forever", f"used more than its {LIMIT} s CPU limit"),
                           ("sleeps", f"neither computed nor waited for a CPU for {LIMIT} s"),
                           ("children_compute", f"used more than its {LIMIT} s CPU limit")]:
        assert got[student]["score"] == full - training, (student, lost(got[student]))
        assert list(lost(got[student])) == ["lenet_training"] and words in lost(got[student])["lenet_training"], \
            (student, lost(got[student]))

    only_honest = tmp_path / "only_honest"
    shutil.copytree(subs / "honest", only_honest / "honest")
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
               for _ in range(BURNERS)]
    try:
        loaded = tmp_path / "loaded"
        proc = grade(A4, only_honest, loaded, env=env)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert proc.returncode == 0, proc.stderr
    again = results(loaded, A4)["honest"]
    assert again["score"] == full, lost(again)
    assert f"of its {LIMIT} s CPU limit" in again["message"]
    assert again["seconds"] > LIMIT, "the burners did not slow the kernel: the test proves nothing"


def test_added_cells_share_one_small_budget(tmp_path):
    """Six ``sleep(17)`` cells added to a1 keep full marks (they answer nothing) but delay the grade
    by seconds, not the 100 s they ask for; an honest helper defined in an added cell after them
    still runs and the answer that uses it keeps its points; the feedback says what happened."""
    a = Assignment(A1)
    nb = a.nb({"layout_code": a.body("layout_code", "assert my_helper() == 42")})
    a.add_cell(nb, "def my_helper():\n    return 42", after="layout_code")
    for _ in range(6):
        a.add_cell(nb, "import time\ntime.sleep(17)", after="layout_code")
    a.add_cell(nb, "import os\nprint('scratch', os.getcwd() != '')", after="layout_code")
    subs = tmp_path / "subs"
    a.file(nb)(subs / "sleepy")
    a.file(a.nb())(subs / "correct")
    proc = grade(A1, subs, tmp_path / "out", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    got = results(tmp_path / "out", A1)
    assert got["correct"]["score"] == got["sleepy"]["score"] == a.max, (lost(got["correct"]), lost(got["sleepy"]))
    assert got["sleepy"]["seconds"] - got["correct"]["seconds"] < 40, (got["sleepy"]["seconds"], got["correct"]["seconds"])
    assert "share 10 s of kernel time" in got["sleepy"]["message"], got["sleepy"]["message"]
    assert "share" not in got["correct"]["message"]


@boxed
def test_tmp_and_the_working_folder_are_capped_in_total(tmp_path):
    """An answer that writes past the cap — many files, each under the per-file cap — into /tmp or its
    working folder loses that exercise (and only it); one that writes beside the kernel's sockets
    loses its kernel; an answer that writes and reads back a small file keeps its points."""
    a = Assignment(A1)
    fill = ("import os\nfor _i in range(80):\n    with open(os.path.join({where}, f'fill{{_i}}'), 'wb') as _fh:\n"
            "        _fh.write(b'x' * (4 << 20))")
    sneak = ("import glob, os\n_ipc = os.path.join(os.path.dirname(os.getcwd()), 'ipc')\n"
             "with open(os.path.join(_ipc, 'stash'), 'wb') as _fh:\n    _fh.write(b'x' * (4 << 20))\n"
             "import time\ntime.sleep(3)")
    small = ("import os\nfor _d in ('/tmp', os.getcwd()):\n    with open(os.path.join(_d, 'note.txt'), 'w') as _fh:\n"
             "        _fh.write('hello')\n    assert open(os.path.join(_d, 'note.txt')).read() == 'hello'")
    subs = tmp_path / "subs"
    for student, prefix in [("fills_tmp", fill.format(where="'/tmp'")), ("fills_cwd", fill.format(where="os.getcwd()")),
                            ("beside_sockets", sneak), ("small_files", small)]:
        a.file(a.nb({"layout_code": a.body("layout_code", prefix)}))(subs / student)
    proc = grade(A1, subs, tmp_path / "out", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    got = results(tmp_path / "out", A1)
    assert got["small_files"]["score"] == a.max, lost(got["small_files"])
    for student, words in [("fills_tmp", "hold at most 256 MiB each"), ("fills_cwd", "hold at most 256 MiB each"),
                           ("beside_sockets", "socket folder")]:
        assert got[student]["score"] == a.max - a.points["layout"], (student, lost(got[student]))
        assert list(lost(got[student])) == ["layout"] and words in lost(got[student])["layout"], lost(got[student])


@boxed
def test_a_venv_reached_through_a_symbolic_link_grades(tmp_path):
    """The course checked out (or its home) behind a symbolic link, common on clusters: the
    sandbox mounts the venv's real path, and the solution gets full marks."""
    prefix = Path(sys.prefix)
    if ROOT not in prefix.parents:
        pytest.skip("the tests' venv is not inside the checkout")
    link = tmp_path / "linked-checkout"
    link.symlink_to(ROOT, target_is_directory=True)
    python = str(link / prefix.relative_to(ROOT) / "bin" / Path(sys.executable).name)
    a = Assignment(A1)
    a.file(a.nb())(tmp_path / "subs" / "correct")
    proc = grade(A1, tmp_path / "subs", tmp_path / "out", python=python)
    assert proc.returncode == 0, proc.stderr
    assert results(tmp_path / "out", A1)["correct"]["score"] == a.max


def test_a_run_whose_kernels_cannot_start_records_nothing(tmp_path):
    """A grading machine whose kernels cannot start (here: a bubblewrap that passes the grader's own
    probe but fails every kernel) stops the run before anyone is graded, with one line naming the
    cause and exit status 2: no result, no gradebook, no 0 for every student."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text('#!/bin/sh\nfor a in "$@"; do last="$a"; done\n[ "$last" = true ] && exit 0\n'
                                'echo "bwrap: setting up uid map: Permission denied" >&2\nexit 1\n')
    (fake / "bwrap").chmod(0o755)
    env = {**autograder_env(), "PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("AUTOGRADER_SANDBOX", None)
    a = Assignment(A1)
    a.file(a.nb())(tmp_path / "subs" / "correct")
    a.file(a.release)(tmp_path / "subs" / "untouched")
    out = tmp_path / "out"
    proc = grade(A1, tmp_path / "subs", out, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "kernels cannot start" in lines[0] and "uid map: Permission denied" in lines[0], lines
    assert not results(out, A1) and not (out / "gradebook.db").exists() and not (out / "grades.csv").exists()


def test_a_notebooks_own_test_cell_limits_cpu_time_too():
    """In a notebook's own test cell (no judge), a CpuLimit stops the call after that much of this
    process's CPU time and says what a call used: the visible test behaves as the grade will."""
    import time

    from autograder.kernel import student

    def spin():
        while True:
            pass

    limit = student.CpuLimit(0.5)
    start = time.monotonic()
    with pytest.raises(student.TimedOut, match="more than its 0.5 s CPU limit"):
        student.call(spin, cpu=limit)
    assert 0.2 < limit.used < 1.5 and time.monotonic() - start < 10  # the timer and rusage sample differently

    quick = student.CpuLimit(5)
    assert student.call(lambda: 3, cpu=quick) == 3 and 0 <= quick.used < 0.5
    asleep = student.CpuLimit(5)
    student.call(time.sleep, 0.3, cpu=asleep)
    assert asleep.used < 0.2  # sleeping is no work
