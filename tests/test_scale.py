"""A course that outgrows one machine: the gradebook on PostgreSQL, grading on Dask, nbgrader's exchange.

Real services, started here and stopped after: a PostgreSQL server in a temporary folder
(:mod:`tests.services`) and a Dask ``LocalCluster`` with two worker processes. One small class
per assignment (the solution, the blank release, a catalogued wrong answer, and for a1 a few
more) is graded once the embedded way — SQLite, ``--workers 2`` — and that run is what the others
must agree with:

* a1 and a2 graded *at the same time* by two ``grade`` commands into one PostgreSQL database:
  the same scores and reasons, one gradebook row per student and exercise, nbgrader's stamp;
* a1 graded on the Dask cluster: the same results; and again with one Dask worker process
  killed mid-run: every student complete and exact, none twice;
* nbgrader's exchange layout, two submissions per student and a due date: the newest graded,
  late ones flagged with nbgrader's own penalty.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder.grading.results import StudentResult

from .classes import Assignment
from .services import PostgresServer, postgres_available
from .support import ROOT, autograder, autograder_command, autograder_env, course_copy

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")]

A1, A2 = "a1_images_and_convolution", "a2_conv_layer"


def write_class(assignment: str, folder: Path, extra: int = 0) -> dict[str, float]:
    """correct, untouched and one wrong answer (and ``extra`` more correct students); student ->
    the score the wrong answer's catalogue says it can reach at most (max for the correct)."""
    a = Assignment(assignment)
    wrong = a.cat.WRONG_ANSWERS[0]
    notebooks = {"correct": a.nb(), "untouched": a.release, "slip": a.nb(dict([a.wrong(wrong.label, wrong.exercise)]))}
    notebooks.update({f"extra{i}": a.nb() for i in range(extra)})
    for student, nb in notebooks.items():
        (folder / student).mkdir(parents=True)
        nbformat.write(nb, folder / student / a.nb_file)
    return {s: a.max for s in notebooks}


def results(out: Path, assignment: str) -> dict[str, StudentResult]:
    return {p.stem: StudentResult.load(p) for p in sorted((out / "results" / assignment).glob("*.json"))}


def verdicts(out: Path, assignment: str) -> dict[str, list]:
    """student -> [(exercise, points, reason)] — what two runs of one class must agree on."""
    return {s: [(c.grade_id, c.points, c.reason) for c in r.cells] for s, r in results(out, assignment).items()}


def gradebook_scores(url: str, assignment: str) -> dict[str, dict[str, float]]:
    """student -> exercise -> auto score, straight from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        out = {}
        for sub in gb.assignment_submissions(assignment):
            out[sub.student.id] = {g.name: g.auto_score for nb in sub.notebooks for g in nb.grades}
        return out


@pytest.fixture(scope="module")
def classes_(tmp_path_factory) -> dict[str, tuple[Path, dict[str, float]]]:
    made = {}
    for assignment, extra in ((A1, 3), (A2, 0)):
        folder = tmp_path_factory.mktemp(f"{assignment}-scale")
        made[assignment] = (folder, write_class(assignment, folder, extra))
    return made


@pytest.fixture(scope="module")
def embedded(classes_, tmp_path_factory) -> Path:
    """The reference: both classes graded the embedded way (SQLite file, two local workers)."""
    out = tmp_path_factory.mktemp("embedded")
    for assignment, (folder, _) in classes_.items():
        proc = autograder("grade", assignment, str(folder), "--out", str(out), "--workers", "2", "--quiet")
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_embedded_run_is_sane(classes_, embedded):
    for assignment, (_, best) in classes_.items():
        got = results(embedded, assignment)
        assert got["correct"].score == best["correct"] and got["untouched"].score == 0
        assert 0 < got["slip"].score < best["slip"]


# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def postgres():
    why = postgres_available()
    if why:
        pytest.skip(why)
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def on_postgres(classes_, postgres, tmp_path_factory):
    """a1 and a2 graded at once, by two grade commands, into one new PostgreSQL database."""
    url = postgres.create_database("course")
    outs = {a: tmp_path_factory.mktemp(f"pg-{a}") for a in classes_}
    procs = {a: subprocess.Popen(autograder_command("grade", a, str(folder), "--out", str(outs[a]), "--db-url", url,
                                         "--workers", "1", "--quiet"),
                                 cwd=ROOT, env=autograder_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for a, (folder, _) in classes_.items()}
    for a, proc in procs.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-3000:]
    return url, outs


def test_postgres_gradebook_agrees_with_the_sqlite_run(classes_, embedded, on_postgres):
    url, outs = on_postgres
    for assignment in classes_:
        assert verdicts(outs[assignment], assignment) == verdicts(embedded, assignment)
        sqlite = gradebook_scores(f"sqlite:///{embedded / 'gradebook.db'}", assignment)
        assert gradebook_scores(url, assignment) == sqlite
        assert set(sqlite) == set(classes_[assignment][1])  # every student, from both concurrent runs
        for student in sqlite:
            page = outs[assignment] / "feedback" / student / assignment
            assert sorted(p.name for p in page.iterdir()) == sorted(p.name for p in (embedded / "feedback" / student
                                                                                       / assignment).iterdir())


def test_postgres_gradebook_is_stamped_and_has_one_row_per_grade(on_postgres):
    from sqlalchemy import create_engine, text

    url, _ = on_postgres
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            (stamp,) = conn.execute(text("select version_num from alembic_version")).one()
            dupes = conn.execute(text(
                "select count(*) from grade g join submitted_notebook n on g.notebook_id = n.id "
                "group by n.id, g.cell_id having count(*) > 1")).all()
            students = conn.execute(text("select count(*) from student")).scalar()
    finally:
        engine.dispose()
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    import nbgrader

    config = Config()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    assert stamp == ScriptDirectory.from_config(config).get_current_head()
    assert dupes == [] and students == 6  # a1's six; a2's three are among them


def test_rerun_into_postgres_keeps_every_grade(classes_, on_postgres):
    url, outs = on_postgres
    before = gradebook_scores(url, A1)
    folder, _ = classes_[A1]
    proc = autograder("grade", A1, str(folder), "--out", str(outs[A1]), "--db-url", url, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("kept from an earlier run") == len(before)
    assert gradebook_scores(url, A1) == before


def test_bad_db_url_is_one_line_and_writes_nothing(classes_, tmp_path, postgres):
    folder, _ = classes_[A1]
    for url, words in [("not a url", "not a database URL"),
                       ("mysql+nosuchdriver://x@localhost/db", "no database driver"),
                       (f"sqlite:///{tmp_path}/missing/gb.db", "does not exist"),
                       (postgres.url("no_such_database"), "cannot connect")]:
        out = tmp_path / "out"
        proc = autograder("grade", A1, str(folder), "--out", str(out), "--db-url", url)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


# ---------------------------------------------------------------------------------------------
# Dask
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0) as local, Client(local) as client:
        yield local.scheduler_address, client


def test_dask_run_agrees_with_local_workers(classes_, embedded, cluster, tmp_path):
    address, _ = cluster
    folder = tmp_path / "submissions"  # the class, its correct student's folder as nbgrader's exchange leaves it
    shutil.copytree(classes_[A1][0], folder)
    (folder / "correct" / "timestamp.txt").write_text("2026-12-01 10:00:00.000000 UTC")
    (folder / "correct" / "submission_secret.txt").write_text("0123456789abcdef")
    out = tmp_path / "out"
    proc = autograder("grade", A1, str(folder), "--out", str(out), "--scheduler", address, "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    tmp_path = out
    assert verdicts(tmp_path, A1) == verdicts(embedded, A1)
    assert gradebook_scores(f"sqlite:///{tmp_path / 'gradebook.db'}", A1) == \
        gradebook_scores(f"sqlite:///{embedded / 'gradebook.db'}", A1)
    for student in verdicts(embedded, A1):  # the worker's files came back with the result
        assert (tmp_path / "feedback" / student / A1 / f"{A1}.html").is_file()
        assert (tmp_path / "nbgrader" / "autograded" / student / A1 / f"{A1}.ipynb").is_file()
        assert (tmp_path / "logs" / A1 / f"{student}.log").is_file()
    for where in (tmp_path / "feedback" / "correct" / A1, tmp_path / "nbgrader" / "autograded" / "correct" / A1):
        # release_feedback finds the student's secret beside the page, as after a local run
        assert (where / "submission_secret.txt").read_text() == "0123456789abcdef"
        assert (where / "timestamp.txt").read_text().startswith("2026-12-01 10:00:00")


def test_a_dask_worker_killed_mid_run_loses_and_doubles_nothing(classes_, embedded, cluster, tmp_path):
    address, client = cluster
    folder, _ = classes_[A1]
    pids = client.run(os.getpid)
    proc = subprocess.Popen(autograder_command("grade", A1, str(folder), "--out", str(tmp_path), "--scheduler", address,
                                    "--quiet"), cwd=ROOT, env=autograder_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not list((tmp_path / "results" / A1).glob("*.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    busy = [addr for addr, keys in client.processing().items() if keys] or sorted(pids)
    os.kill(pids[busy[0]], signal.SIGKILL)  # a worker process mid-task: its student is graded again elsewhere
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert verdicts(tmp_path, A1) == verdicts(embedded, A1)
    assert gradebook_scores(f"sqlite:///{tmp_path / 'gradebook.db'}", A1) == \
        gradebook_scores(f"sqlite:///{embedded / 'gradebook.db'}", A1)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert sorted(r["student"] for r in rows) == sorted(verdicts(embedded, A1))  # each once
    client.wait_for_workers(2, timeout=120)  # the nanny brought it back for the tests after this


def test_a_cluster_whose_kernels_cannot_start_records_nothing(classes_, tmp_path):
    """Dask workers on a host where a grading kernel cannot start (a bubblewrap that passes the
    sandbox's own check but fails every kernel): the run stops before anyone is graded, with one
    line naming the workers and the cause — no result, no gradebook, no 0 for every student."""
    from distributed import LocalCluster

    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text('#!/bin/sh\nfor a in "$@"; do last="$a"; done\n[ "$last" = true ] && exit 0\n'
                                'echo "bwrap: setting up uid map: Permission denied" >&2\nexit 1\n')
    (fake / "bwrap").chmod(0o755)
    env = {"PATH": f"{fake}{os.pathsep}{os.environ.get('PATH', '')}"}
    folder, _ = classes_[A1]
    out = tmp_path / "out"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit=0, env=env) as broken:
        proc = autograder("grade", A1, str(folder), "--out", str(out), "--scheduler", broken.scheduler_address)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot start on 1 of 1 Dask workers" in lines[0] and "uid map" in lines[0], lines
    assert not list((out / "results").rglob("*.json")) and not (out / "gradebook.db").exists()


def test_unreachable_scheduler_is_one_line(classes_, tmp_path):
    folder, _ = classes_[A1]
    proc = autograder("grade", A1, str(folder), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9")
    assert proc.returncode == 2 and "no Dask scheduler answered" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# nbgrader's exchange: several submissions per student, a due date
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def late_course(tmp_path_factory) -> Path:
    """The course with a due date for a1 and nbgrader's "zero" rule, as an instructor would set it."""
    return course_copy(tmp_path_factory.mktemp("late-course"),
                       '\nc.Autograder.due_dates = {"a1_images_and_convolution": "2026-11-30 17:00:00 UTC"}\n'
                       'c.LateSubmissionPlugin.penalty_method = "zero"\n')


def submit(inbound: Path, student: str, nb, when: str) -> None:
    """What ``nbgrader submit`` leaves in the exchange's inbound folder."""
    folder = inbound / f"{student}+{A1}+{when}+r4nd0m"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{A1}.ipynb")
    (folder / "timestamp.txt").write_text(when)


def test_exchange_newest_submission_graded_and_late_flagged(late_course, tmp_path):
    a = Assignment(A1)
    wrong = a.cat.WRONG_ANSWERS[0]
    slip = a.nb(dict([a.wrong(wrong.label, wrong.exercise)]))
    inbound = tmp_path / "exchange" / "course" / "inbound"
    submit(inbound, "ana", slip, "2026-11-29 10:00:00.000000 UTC")
    submit(inbound, "ana", a.nb(), "2026-11-30 16:59:00.000000 UTC")    # fixed in time
    submit(inbound, "ben", a.nb(), "2026-11-29 09:00:00.000000 UTC")
    submit(inbound, "ben", slip, "2026-11-30 18:30:00.000000 UTC")      # a late change for the worse
    submit(inbound, "cy", a.nb(), "2026-12-01 17:00:00.000000 UTC")      # a day late
    (inbound / "dee+a2_conv_layer+2026-11-29 09:00:00.000000 UTC+x").mkdir()  # another assignment
    out = tmp_path / "out"
    proc = autograder("--course", str(late_course), "grade", A1, str(inbound), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = results(out, A1)
    assert sorted(got) == ["ana", "ben", "cy"]
    assert got["ana"].score == a.max and got["ana"].seconds_late == 0 and got["ana"].late_penalty == 0
    assert "newest of 2 submissions" in got["ana"].message
    assert got["ben"].points < a.max and got["ben"].seconds_late == 90 * 60
    assert got["ben"].late_penalty == got["ben"].points and got["ben"].score == 0   # nbgrader's "zero"
    assert got["cy"].points == a.max and got["cy"].seconds_late == 24 * 3600 and got["cy"].score == 0
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert rows["cy"]["score"] == "0" and rows["cy"]["late_penalty"] == f"{a.max:g}"
    assert rows["cy"]["submitted_at"] == "2026-12-01 17:00:00 UTC" and "late by 1 d" in rows["cy"]["notes"]
    assert rows["ana"]["late_penalty"] == "0" and rows["ana"]["seconds_late"] == "0"
    assert "cy: late by 1 d" in proc.stdout

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:  # what formgrader and nbgrader export see
        assert str(gb.find_assignment(A1).duedate) == "2026-11-30 17:00:00"
        cy = gb.find_submission(A1, "cy")
        assert cy.total_seconds_late == 24 * 3600 and cy.late_submission_penalty == a.max
        assert gb.find_submission(A1, "ana").late_submission_penalty in (None, 0)
        grade = gb.find_grade("pad2d", A1, A1, "cy")  # a hand grade and extra credit, as formgrader saves them
        grade.manual_score, grade.extra_credit = 2.0, 1.0
        gb.db.commit()
    proc = autograder("--course", str(late_course), "grade", A1, str(inbound), "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with Gradebook(f"sqlite:///{out / 'gradebook.db'}") as gb:  # nbgrader's rule on the final points: all of them
        cy = gb.find_submission(A1, "cy")
        assert cy.notebooks[0].late_submission_penalty == a.max and cy.score == a.max  # 3 - 3 + 2 + 1 on pad2d
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert (rows["cy"]["score"], rows["cy"]["hand_graded"], rows["cy"]["late_penalty"]) == ("0", "yes", f"{a.max:g}")


def test_collected_layout_reads_timestamp(tmp_path):
    from autograder.grading.autograde import find_submissions

    a = Assignment(A1)
    folder = tmp_path / "submitted" / "eve" / A1
    folder.mkdir(parents=True)
    nbformat.write(a.nb(), folder / a.nb_file)
    (folder / "timestamp.txt").write_text("2026-11-30 19:00:00.5 Europe/Paris")
    (sub,), skipped = find_submissions(tmp_path / "submitted", A1)
    assert skipped == [] and str(sub.submitted_at) == "2026-11-30 18:00:00.500000"


def test_bad_due_date_is_one_line(late_course, tmp_path, classes_):
    config = late_course / "nbgrader_config.py"
    text = config.read_text()
    try:
        config.write_text(text.replace("2026-11-30 17:00:00 UTC", "next friday-ish"))
        folder, _ = classes_[A1]
        proc = autograder("--course", str(late_course), "grade", A1, str(folder), "--out", str(tmp_path / "o"))
        assert proc.returncode == 2 and "due date of a1_images_and_convolution" in proc.stderr, proc.stderr
        assert not (tmp_path / "o").exists()
    finally:
        config.write_text(text)
