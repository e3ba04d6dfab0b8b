"""Who the students are, for the gradebook: names and email addresses that formgrader shows.

The course's roster is nbgrader's own student CSV (the file ``nbgrader db student import`` takes:
an ``id`` column, and optionally ``first_name``, ``last_name``, ``email``, ``lms_user_id``), named in
the course's ``nbgrader_config.py``::

    c.Autograder.roster = "roster.csv"        # relative to the course folder

Each ``grade`` run writes the roster's students into the gradebook — every one, with or without a
submission, so formgrader lists who has not handed in — and a roster value replaces the gradebook's.
What the roster leaves empty keeps what the gradebook has (names typed in formgrader's Manage
Students, or imported with ``nbgrader db student import``). A student named nowhere, whose id is a
local account of this machine (a JupyterHub's users), gets the account's full name (its GECOS field).
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..course import Course, UsageError

FIELDS = ("first_name", "last_name", "email", "lms_user_id")
MAX_BYTES = 10 * 2**20


def path_of(course: Course) -> Path | None:
    """The roster file the course's config names, or None."""
    from traitlets.config import Config

    from .late import course_config

    value = course_config(course).get("Autograder", Config()).get("roster", "")
    if not value:
        return None
    if not isinstance(value, str):
        raise UsageError(f"{course.root / 'nbgrader_config.py'}: c.Autograder.roster must be the path of a CSV file")
    return (course.root / Path(value).expanduser()).resolve()


def read(course: Course) -> dict[str, dict[str, str]]:
    """student id -> the roster's non-empty fields of :data:`FIELDS`; {} without a roster. A roster
    that cannot be used is a UsageError (one line: which file, which row, what to fix)."""
    path = path_of(course)
    if path is None:
        return {}
    where = f"roster {path} (c.Autograder.roster)"
    try:
        if not path.is_file():
            raise UsageError(f"{where} does not exist; write nbgrader's student CSV there (columns id, "
                             "first_name, last_name, email) or remove the setting")
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"{where} is larger than {MAX_BYTES // 2**20} MiB; it is not a roster")
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            columns = set(rows[0]) if rows else set()
    except UnicodeDecodeError:
        raise UsageError(f"{where} is not UTF-8 text; save it as CSV (UTF-8)") from None
    except (OSError, csv.Error) as exc:
        raise UsageError(f"{where} cannot be read: {exc}") from None
    if rows and "id" not in columns:
        raise UsageError(f"{where} has no 'id' column (its columns: {', '.join(sorted(c for c in columns if c))}); "
                         "nbgrader's student CSV has id, first_name, last_name, email")
    students: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, 2):
        sid = (row.get("id") or "").strip()
        if not sid:
            raise UsageError(f"{where}, row {n}: no student id")
        if sid in students:
            raise UsageError(f"{where}, row {n}: student {sid!r} appears twice")
        students[sid] = {f: str(row[f]).strip() for f in FIELDS if isinstance(row.get(f), str) and row[f].strip()}
    return students


def account_name(student: str) -> tuple[str | None, str | None] | None:
    """(first name, last name) from the full name of the local account ``student``, or None when there
    is no such account or it has no full name."""
    try:
        import pwd

        entry = pwd.getpwnam(student)
    except (ImportError, KeyError, OSError, ValueError):
        return None
    full = entry.pw_gecos.split(",")[0].strip()
    if not full or full == student:
        return None
    first, _, last = full.rpartition(" ")
    return (first or None, last) if first else (None, last)
