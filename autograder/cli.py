"""python -m autograder — the course's command line.

  release [ASSIGNMENT]                      solutions/ -> assignments/ (all assignments by default)
  grade ASSIGNMENT SUBMISSIONS_DIR --out D  autograde a class, write feedback and D/grades.csv
        [--workers N | --scheduler ADDRESS] [--db-url URL]   where it grades, where the gradebook is
  validate NOTEBOOK                         what the grade will say about the visible tests (Validate)
  formgrader OUT                            nbgrader's formgrader (JupyterLab) on a graded class
  fetch ASSIGNMENT [DIR]                    your own copy of an assignment to work in (DIR/ASSIGNMENT; DIR: work/mine)
  lab                                       JupyterLab on your copies, the student's view (make lab)
  hub --instructor NAME [--student NAME|@GROUP]...   the course on a JupyterHub, as root (make hub)
  secret [--set VALUE | --new]              where the course secret is (the hidden tests' seeds); set it
  demo                                      release, build a sample class, grade it, print the table

Exit status: 0 on success; 1 when some submissions could not be read (they are listed, every
other student is graded); 2 for bad usage (wrong path, unknown assignment), with nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .course import UsageError, find_course


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m autograder",
        description="ConvNets course tools: release assignments, autograde a class, run the demo.",
        epilog="Run 'python -m autograder COMMAND --help' for a command's options.",
    )
    p.add_argument("--course", metavar="DIR", help="course folder (default: found from the current "
                   "folder, else the checkout this package is installed from)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("release", help="generate student notebooks in assignments/ from solutions/",
                       description="Run nbgrader generate_assignment: strip solutions and hidden tests "
                                   "from solutions/ASSIGNMENT and write assignments/ASSIGNMENT.")
    r.add_argument("assignment", nargs="?", help="assignment id, e.g. a1_images_and_convolution (default: all)")
    r.add_argument("--to", metavar="DIR", help="release into DIR instead of assignments/ (with a throw-away gradebook)")

    g = sub.add_parser("grade", help="autograde every submission of an assignment",
                       description="Autograde SUBMISSIONS_DIR/<student_id>/<notebook>.ipynb (or "
                                   "<student_id>/<assignment>/<notebook>.ipynb) with nbgrader, one "
                                   "process per student; write HTML feedback, per-student results "
                                   "and OUT/grades.csv, and print the grade table.")
    g.add_argument("assignment", help="assignment id, e.g. a1_images_and_convolution")
    g.add_argument("submissions", metavar="SUBMISSIONS_DIR", help="folder with one folder per student")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (grades.csv, feedback/, results/, logs/, gradebook.db); "
                        "grades already recorded there are kept")
    g.add_argument("--cell-timeout", type=float, default=120.0, metavar="S",
                   help="seconds one cell may run (default 120)")
    g.add_argument("--timeout", type=float, default=900.0, metavar="S",
                   help="seconds one submission may take in all (default 900)")
    g.add_argument("--workers", type=int, default=1, metavar="N",
                   help="grade N submissions at once, each in its own process (default 1)")
    g.add_argument("--memory", type=int, default=6144, metavar="MB",
                   help="address-space cap per kernel in MiB (default 6144; torch alone maps ~1.5 GiB)")
    g.add_argument("--db-url", metavar="URL",
                   help="the gradebook's database (default: sqlite:///OUT/gradebook.db); e.g. "
                        "postgresql+psycopg://user@host/gradebook for a course several instructors share")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786) "
                        "instead of --workers local processes")
    g.add_argument("--regrade", action="store_true",
                   help="grade every submission again, even those an earlier run already committed")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    v = sub.add_parser("validate", help="what the grade will say about the visible tests (what Validate does)",
                       description="Grade NOTEBOOK as the grader does — the instructor's cells restored, your "
                                   "code run in a sandboxed kernel, each exercise judged from outside it — on "
                                   "the visible tests, and print each exercise's verdict, failures first.")
    v.add_argument("notebook", help="path to your .ipynb")
    v.add_argument("--json", action="store_true", help="print the verdicts as JSON")

    f = sub.add_parser("formgrader", help="open nbgrader's formgrader on a class `grade` graded",
                       description="Start JupyterLab in OUT (the --out folder of `grade`) with nbgrader's "
                                   "formgrader on that class: its gradebook, graded notebooks, feedback and "
                                   "the released assignments. Open Nbgrader → Formgrader.")
    f.add_argument("out", metavar="OUT", help="the --out folder of a grade run")
    f.add_argument("--port", type=int, metavar="PORT", help="port for JupyterLab (default: its own choice)")
    f.add_argument("--no-browser", action="store_true", help="do not open a browser")

    fe = sub.add_parser("fetch", help="copy an assignment into a folder of your own to work in",
                        description="Copy assignments/ASSIGNMENT into DIR/ASSIGNMENT (default DIR: work/mine, "
                                    "which git ignores). An existing copy is never overwritten.")
    fe.add_argument("assignment", help="assignment id, e.g. a1_images_and_convolution")
    fe.add_argument("dir", nargs="?", metavar="DIR", help="the folder to put it in, as DIR/ASSIGNMENT (default work/mine)")

    la = sub.add_parser("lab", help="JupyterLab on your copies of the assignments (what make lab runs)",
                        description="Fetch every assignment not yet in work/mine/ and start JupyterLab there, "
                                    "with Validate in the toolbar and without nbgrader's instructor panels.")
    la.add_argument("--port", type=int, metavar="PORT", help="port for JupyterLab (default: its own choice)")
    la.add_argument("--no-browser", action="store_true", help="do not open a browser")

    h = sub.add_parser("hub", help="the course on a JupyterHub for instructors and students (run as root)",
                       description="Set up and start a JupyterHub for the course on this machine: the named "
                                   "Unix accounts log in with their own password; students get nbgrader's "
                                   "Assignment List (fetch, submit, fetch feedback) and Validate, instructors "
                                   "formgrader and a course folder ~/convnets; nbgrader's exchange is shared "
                                   "in --exchange. Runs in the foreground; Ctrl-C stops it.")
    h.add_argument("--instructor", action="append", default=[], metavar="NAME",
                   help="an instructor's Unix account (repeat for several)")
    h.add_argument("--student", action="append", default=[], metavar="NAME",
                   help="a student's Unix account, or @GROUP for every member of a Unix group (repeat for several)")
    h.add_argument("--port", type=int, default=8000, metavar="PORT", help="the hub's port (default 8000)")
    h.add_argument("--ip", default="", metavar="IP", help="the address to listen on (default: all)")
    h.add_argument("--dir", default=None, metavar="DIR", help="the hub's own folder (default /srv/convnets-hub)")
    h.add_argument("--exchange", default=None, metavar="DIR",
                   help="nbgrader's exchange (default /srv/nbgrader/exchange)")

    s = sub.add_parser("secret", help="where the course secret is kept (the hidden tests' seeds); set or renew it",
                       description="The hidden tests draw their inputs from a course secret kept outside the "
                                   "repository (work/course_secret, owner-only; or $AUTOGRADER_SECRET / "
                                   "$AUTOGRADER_SECRET_FILE). Without options: make it if missing and say where "
                                   "it is (never its value).")
    group = s.add_mutually_exclusive_group()
    group.add_argument("--set", metavar="VALUE", help="use VALUE (16 characters or more) as the secret")
    group.add_argument("--new", action="store_true", help="draw a new random secret (new hidden tests)")

    d = sub.add_parser("demo", help="release everything, grade a sample class, print the table",
                       description="Release every assignment, build sample submissions (correct, "
                                   "untouched release, realistic bug, malformed), autograde them with "
                                   "nbgrader, write feedback and grades, and print students × points.")
    d.add_argument("--out", metavar="DIR", help="output folder (default: work/demo in the course)")
    d.add_argument("--assignment", metavar="ID", help="only this assignment (default: all)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        course = find_course(args.course)
        if args.command == "release":
            from .grading.release import release

            for path in release(course, args.assignment, release_dir=Path(args.to) if args.to else None):
                print(path.relative_to(course.root) if path.is_relative_to(course.root) else path)
            return 0
        if args.command == "grade":
            from .grading.autograde import grade
            from .grading.results import render_table

            from .grading.sandbox import Limits, isolation_note

            if args.cell_timeout <= 0 or args.timeout <= 0:
                raise UsageError("--cell-timeout and --timeout must be positive numbers of seconds")
            if args.memory < 512:
                raise UsageError("--memory must be at least 512 (MiB); a kernel with numpy needs that much")
            report = grade(course, args.assignment, args.submissions, args.out,
                           cell_timeout=args.cell_timeout, submission_timeout=args.timeout,
                           workers=args.workers, limits=Limits(memory_mb=args.memory, cpu_s=int(args.timeout) + 60),
                           regrade=args.regrade, show_progress=not args.quiet, db_url=args.db_url,
                           scheduler=args.scheduler)
            print(render_table(report.graded_now, report.exercises, report.hand, report.final))
            print("\nPer student:")
            for r in report.graded_now:
                how = "kept from an earlier run" if r.student in report.resumed else f"{r.seconds:g} s"
                if r.student in report.final:
                    how += f"; with hand grades {report.final[r.student]:g}/{r.max_score:g}"
                print(f"  {r.student}: {r.status}, {r.score:g}/{r.max_score:g} ({how})")
            print(f"\n{isolation_note()}")
            print(f"\ngrades: {report.grades_csv}\nfeedback: {report.out / 'feedback'}")
            from .kernel.student import inert

            for line in report.bad_input:
                print(f"bad submission: {inert(line)}", file=sys.stderr)
            return 1 if report.bad_input else 0
        if args.command == "validate":
            from .grading.validate import validate

            return validate(Path(args.notebook), as_json=args.json)
        if args.command == "formgrader":
            from .grading import formgrader

            return formgrader.serve(Path(args.out), args.port, browser=not args.no_browser)
        if args.command == "fetch":
            from .workspace import fetch

            print(fetch(course, args.assignment, Path(args.dir) if args.dir else None))
            return 0
        if args.command == "lab":
            from .workspace import lab

            return lab(course, args.port, browser=not args.no_browser)
        if args.command == "hub":
            from . import hub

            people = hub.People.parse([n for v in args.instructor for n in v.split(",") if n],
                                      [n for v in args.student for n in v.split(",") if n])
            return hub.serve(course, people, Path(args.dir) if args.dir else hub.HUB_DIR,
                             Path(args.exchange) if args.exchange else hub.EXCHANGE, args.port, args.ip)
        if args.command == "secret":
            import secrets as random

            from . import secret

            path = secret.path_for(course.work)
            try:
                if args.set is not None:
                    secret.store(path, args.set)
                elif args.new:
                    secret.store(path, random.token_hex(32))
                else:
                    secret.load(course.work)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            print(f"course secret: {path}" + (" (from $AUTOGRADER_SECRET)" if os.environ.get("AUTOGRADER_SECRET") else ""))
            return 0
        if args.command == "demo":
            from .grading.demo import demo

            return demo(course, out=Path(args.out) if args.out else None, assignment=args.assignment,
                        show_progress=not args.quiet)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {args.command}")
