"""When a submission was handed in, the assignment's due date, and nbgrader's late-submission rules.

Timestamps come from nbgrader's own files: ``timestamp.txt`` in a submission folder (what
``nbgrader submit`` writes and ``nbgrader collect`` keeps), else the time in an exchange folder's
name (``<student>+<assignment>+<timestamp>+<random>``). Due dates and the penalty rule come from
the course's ``nbgrader_config.py``::

    c.Autograder.due_dates = {"a1_images_and_convolution": "2027-02-01 17:00:00 Europe/Paris"}
    c.LateSubmissionPlugin.penalty_method = "zero"     # nbgrader's rules: "none" (default) or "zero"
    c.AssignLatePenalties.plugin_class = "mycourse.HalfOff"   # or a plugin of the course's own

The penalty is nbgrader's: its plugin is asked per notebook with that notebook's score and the
seconds late, and the answer kept between 0 and the score, as ``nbgrader autograde`` does.
All times are naive UTC, as in nbgrader's gradebook.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ..course import Course, UsageError

Timestamp = dt.datetime


def parse(text: str) -> Timestamp:
    """nbgrader's reading of a timestamp (any zone) as naive UTC; ValueError when it is none."""
    from nbgrader.utils import parse_utc

    try:
        value = parse_utc(text.strip())
    except (ValueError, OverflowError, TypeError) as exc:
        raise ValueError(f"{text.strip()[:60]!r} is not a date and time") from exc
    if value is None:
        raise ValueError("empty timestamp")
    return value


def shown(ts: Timestamp | None) -> str | None:
    return None if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S UTC")


def exact(ts: Timestamp) -> str:
    """``ts`` for a ``timestamp.txt``, to the microsecond: nbgrader's formgrader counts a submission as
    autograded only when this file's time equals the gradebook's."""
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def read_timestamp(folder: Path) -> Timestamp | None:
    """The time in ``folder/timestamp.txt``; None when there is no readable one."""
    path = folder / "timestamp.txt"
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 200:
            return None
        return parse(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return None


@dataclass
class Rules:
    """An assignment's due date and nbgrader's late-submission plugin, as the course configures them."""
    due: Timestamp | None
    plugin: object | None  # an nbgrader LateSubmissionPlugin (or the course's subclass)

    def penalty(self, student: str, notebook_scores: dict[str, float],
                submitted: Timestamp | None) -> tuple[float, dict[str, float | None]]:
        """(seconds late, notebook -> its penalty or None) for a submission made at ``submitted``."""
        if self.due is None or submitted is None or submitted <= self.due:
            return 0.0, {name: None for name in notebook_scores}
        late = (submitted - self.due).total_seconds()
        out: dict[str, float | None] = {}
        for name, score in notebook_scores.items():
            value = self.plugin.late_submission_penalty(student, score, late) if self.plugin else None
            # kept between 0 and the notebook's score, as nbgrader's AssignLatePenalties does
            out[name] = None if value is None else min(max(float(value), 0.0), score)
        return late, out


def course_config(course: Course):
    """The course's nbgrader_config.py as traitlets reads it; a UsageError saying where it is wrong."""
    from traitlets.config.loader import PyFileConfigLoader

    path = course.root / "nbgrader_config.py"
    try:
        return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()
    except Exception as exc:  # noqa: BLE001 - the course's own file: say where it is wrong
        raise UsageError(f"{path} cannot be loaded: {type(exc).__name__}: {exc}") from None


def rules(course: Course, assignment: str) -> Rules:
    """The due date and penalty rule for ``assignment`` from the course's nbgrader_config.py."""
    from traitlets.config import Config

    path = course.root / "nbgrader_config.py"
    config = course_config(course)
    dates = config.get("Autograder", Config()).get("due_dates", {}) or {}
    if not isinstance(dates, dict):
        raise UsageError(f"{path}: c.Autograder.due_dates must be a dict of assignment -> date")
    due = None
    if dates.get(assignment):
        try:
            due = parse(str(dates[assignment]))
        except ValueError as exc:
            raise UsageError(f"{path}: due date of {assignment}: {exc}; write e.g. '2027-02-01 17:00:00 UTC'") from None
    if due is None:
        return Rules(None, None)
    from nbgrader.preprocessors import AssignLatePenalties

    try:
        assigner = AssignLatePenalties(config=config)
        assigner.init_plugin()
    except Exception as exc:  # noqa: BLE001 - a misnamed plugin class or an unknown method
        raise UsageError(f"{path}: nbgrader's late-submission settings are not usable: {exc}") from None
    return Rules(due, assigner.plugin_inst)
