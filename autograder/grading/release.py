"""solutions/ -> assignments/: nbgrader generate_assignment for one or every assignment."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..course import Course, UsageError
from .nbgrader_cli import flags, jupyter_home, nbgrader
from .progress import progress


def release(course: Course, assignment: str | None = None, *, release_dir: Path | None = None,
            show_progress: bool = True) -> list[Path]:
    """Release ``assignment`` (default: all) from solutions/ and return the released notebooks.

    By default the release goes to the course's assignments/ and is recorded in the course
    gradebook (work/gradebook.db). With ``release_dir`` it goes there instead, with a throw-away
    gradebook: that is how the tests check that assignments/ is exactly what a release produces.
    """
    ids = [course.require(assignment)] if assignment else course.assignment_ids()
    if not ids:
        raise UsageError(f"no assignments in {course.solutions}")
    with tempfile.TemporaryDirectory(prefix="autograder-release-") as scratch:
        settings: dict[str, object] = {}
        base = course.work / "nbgrader-home"
        if release_dir is not None:
            release_dir = Path(release_dir).resolve()
            settings = {"CourseDirectory.release_directory": release_dir,
                        "CourseDirectory.db_url": f"sqlite:///{Path(scratch) / 'gradebook.db'}"}
            base = Path(scratch)
        env = jupyter_home(base)
        out = release_dir or course.assignments
        released: list[Path] = []
        for a in progress(ids, desc="release", unit="assignment", enable=show_progress):
            run = nbgrader(["generate_assignment", a, "--force", *flags(settings)], cwd=course.root, env=env,
                           log=base / "logs" / f"release-{a}.log")
            if not run.ok:
                detail = "; ".join(run.errors()[-2:]) or (run.output.strip().splitlines() or ["no output"])[-1]
                raise UsageError(f"releasing {a} failed: {detail}")
            released += sorted((out / a).glob("*.ipynb"))
    return released


def frame(course: Course) -> dict[str, list[dict]]:
    """The cells a release adds around the source — nbgrader's ``IncludeHeaderFooter`` header and
    footer notebooks, as the course's nbgrader_config.py names them (paths relative to the course
    folder, as nbgrader reads them when releasing) — as ``{"header": [cell, …], "footer": […]}``.
    They are the instructor's: the grader puts them back as instructor cells (:mod:`.assemble`)."""
    import nbformat
    from traitlets.config import Config

    from .late import course_config

    settings = course_config(course).get("IncludeHeaderFooter", Config())
    out: dict[str, list[dict]] = {}
    for part in ("header", "footer"):
        value = settings.get(part, "")
        if not value:
            continue
        path = course.root / Path(str(value)).expanduser()
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as exc:
            raise UsageError(f"the release's {part} notebook {path} (c.IncludeHeaderFooter.{part}) cannot be "
                             f"read: {exc}") from None
        out[part] = [dict(cell) for cell in nb.cells]
    return out
