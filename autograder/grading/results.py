"""Per-student results: what was scored, and for each lost point, why.

One JSON file per (assignment, student) under ``OUT/results/``; grades.csv and the printed table
are built from all of them, so a later run adds to the record instead of replacing it. A result is
the grader's alone: what people entered in formgrader (:class:`HandGrade`, read from the gradebook)
is applied on top of it, in grades.csv and the table, never written into it.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path


GRADED = "graded"          # the notebook ran in its sandbox; cells scored as their tests ran
UNREADABLE = "unreadable"  # the notebook could not be parsed: 0 (or the previous grade kept)
MISSING = "missing"        # no notebook of that name in the student's folder: 0
ERROR = "error"            # grading itself failed (timed out, nbgrader error): 0 with the reason


@dataclass
class CellResult:
    grade_id: str
    points: float
    max_points: float
    reason: str | None = None  # why points were lost; None at full marks


@dataclass
class HandGrade:
    """What a person entered in formgrader for one exercise (nbgrader's gradebook)."""
    manual: float | None = None  # a manual score: replaces the automatic one
    extra: float | None = None  # extra credit: added
    review: bool = False  # flagged: the automatic score changed since the manual score was given

    def describe(self, exercise: str, auto: float | None, max_points: float | None) -> str:
        parts = []
        if self.manual is not None:
            of = f"/{max_points:g}" if max_points is not None else ""
            parts.append(f"hand-graded {self.manual:g}{of}" + (f" (automatic {auto:g})" if auto is not None else ""))
        if self.extra:
            parts.append(f"{self.extra:+g} extra credit")
        if self.review:
            parts.append("review it: the automatic score changed since")
        return f"{exercise}: {', '.join(parts) or 'hand grade'}"


@dataclass
class StudentResult:
    student: str
    assignment: str
    status: str
    max_score: float
    cells: list[CellResult] = field(default_factory=list)
    message: str = ""  # the one-line reason when status is not "graded", or a note
    feedback: str | None = None  # path of the HTML feedback, relative to the output folder
    digest: str = ""  # fingerprint of the submission, sources and settings this result was made from
    seconds: float = 0.0  # time spent running the notebook, kernel starts included
    cell_seconds: float = 0.0  # of which the cells themselves ran
    submitted_at: str | None = None  # when it was handed in (nbgrader's timestamp.txt), UTC
    seconds_late: float = 0.0  # past the assignment's due date
    late_penalty: float = 0.0  # what nbgrader's late-submission rule took off the points below

    @property
    def points(self) -> float:
        """The points the exercises earned, before any late penalty."""
        return sum(c.points for c in self.cells)

    @property
    def score(self) -> float:
        """What counts: the exercises' points less the late penalty."""
        return max(0.0, self.points - self.late_penalty)

    def final_points(self, hand: dict[str, HandGrade], cells: list[CellResult] | None = None) -> float:
        """The exercises' points (of ``cells``, default all) with the hand grades in: a manual score
        replaces the automatic one and extra credit is added, as nbgrader's gradebook scores them."""
        total = 0.0
        for c in self.cells if cells is None else cells:
            g = hand.get(c.grade_id)
            total += c.points if g is None or g.manual is None else g.manual
            total += (g.extra or 0.0) if g is not None else 0.0
        return total

    def final_score(self, hand: dict[str, HandGrade] | None, late_penalty: float | None = None) -> float:
        """What counts once hand grades apply (:attr:`score` when there are none): the final points
        less the late penalty (``late_penalty``: nbgrader's rule on the final points)."""
        if not hand:
            return self.score
        return max(0.0, self.final_points(hand) - (self.late_penalty if late_penalty is None else late_penalty))

    def lost(self) -> list[CellResult]:
        return [c for c in self.cells if c.points < c.max_points]

    def notes(self) -> str:
        """The reasons for every lost point, one short clause each."""
        parts = [self.message] if self.message else []
        if self.seconds_late > 0:
            parts.append(f"late by {late_text(self.seconds_late)}"
                         + (f": -{self.late_penalty:g}" if self.late_penalty else " (no penalty)"))
        if self.status == GRADED:
            parts += [f"{c.grade_id} -{c.max_points - c.points:g}: {first_line(c.reason)}" for c in self.lost()]
        return " | ".join(parts)

    def save(self, out: Path) -> Path:
        path = result_path(out, self.assignment, self.student)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**asdict(self), "score": self.score}, indent=1))
        os.replace(tmp, path)  # atomic: a killed grader leaves the old record or the new one
        return path

    @classmethod
    def load(cls, path: Path) -> "StudentResult":
        data = json.loads(path.read_text())
        data.pop("score", None)
        data["cells"] = [CellResult(**c) for c in data["cells"]]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def late_text(seconds: float) -> str:
    """``93784`` -> ``1 d 2 h 3 min``."""
    minutes = int(seconds // 60) or 1
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours) + [f"{mins} min"] * bool(mins)
    return " ".join(parts)


def result_path(out: Path, assignment: str, student: str) -> Path:
    return out / "results" / assignment / f"{student}.json"


def load_all(out: Path) -> list[StudentResult]:
    results = []
    for path in sorted((out / "results").glob("*/*.json")):
        results.append(StudentResult.load(path))
    return results


def first_line(text: str | None, limit: int = 160) -> str:
    """The first line of a reason, cut to ``limit`` characters, without control characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "no reason recorded"
    line = re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def write_grades_csv(out: Path, results: list[StudentResult], columns: dict[str, list[str]],
                     hand: dict | None = None, penalties: dict | None = None) -> Path:
    """grades.csv: student, assignment, status, score (final: hand grades where given), max_score,
    auto_score (the grader's), hand_graded (yes/no), one column per exercise (its final points), when
    it was submitted, how late and the late penalty (already taken off both scores), notes (every lost
    point's reason, then each hand grade).

    ``columns`` maps each assignment to its exercise ids in notebook order; ``hand`` maps
    (assignment, student) to exercise -> :class:`HandGrade`, and ``penalties`` to the late penalty
    on the final points where a hand grade applies.
    """
    hand, penalties = hand or {}, penalties or {}
    exercise_cols: list[str] = []
    for ids in columns.values():
        exercise_cols += [c for c in ids if c not in exercise_cols]
    path = out / "grades.csv"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two runs into one folder never share a temporary file
    with tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "status", "score", "max_score", "auto_score", "hand_graded",
                         *exercise_cols, "submitted_at", "seconds_late", "late_penalty", "notes"])
        for r in sorted(results, key=lambda r: (r.assignment, r.student)):
            key = (r.assignment, r.student)
            grades = hand.get(key, {})
            penalty = penalties.get(key, r.late_penalty) if grades else r.late_penalty
            pts = {c.grade_id: c.points if c.grade_id not in grades or grades[c.grade_id].manual is None
                   else grades[c.grade_id].manual for c in r.cells}
            notes = " | ".join(n for n in [r.notes(), *hand_notes(r, grades)] if n)
            writer.writerow([r.student, r.assignment, r.status, f"{r.final_score(grades, penalty):g}",
                             f"{r.max_score:g}", f"{r.score:g}", "yes" if grades else "no",
                             *[(f"{pts[c]:g}" if c in pts else "") for c in exercise_cols],
                             r.submitted_at or "", f"{r.seconds_late:g}", f"{penalty:g}", notes])
    os.replace(tmp, path)
    return path


def hand_notes(r: StudentResult, grades: dict[str, HandGrade]) -> list[str]:
    """One line per hand-graded exercise of ``r``: the hand score, the automatic one, extra credit, review."""
    cells = {c.grade_id: c for c in r.cells}
    return [g.describe(gid, cells[gid].points if gid in cells else None, cells[gid].max_points if gid in cells else None)
            for gid, g in sorted(grades.items(), key=lambda kv: list(cells).index(kv[0]) if kv[0] in cells else 10**6)]


def render_table(results: list[StudentResult], exercises: list[tuple[str, float]],
                 hand: dict[str, dict[str, HandGrade]] | None = None, final: dict[str, float] | None = None) -> str:
    """Students × points, then the reason for each lost point, as plain text. ``hand``: student ->
    exercise -> :class:`HandGrade` (formgrader's); ``final``: student -> the score with them in."""
    hand, final = hand or {}, final or {}
    ids = [gid for gid, _ in exercises]
    width = {gid: max(5, min(len(gid), 10)) for gid in ids}
    short = {gid: gid if len(gid) <= width[gid] else gid[: width[gid] - 1] + "…" for gid in ids}
    name_w = max([7] + [len(r.student) for r in results])
    total = sum(p for _, p in exercises)

    def row(name: str, score: str, cells: list[str], status: str = "") -> str:
        body = " ".join(f"{c:>{width[g]}}" for g, c in zip(ids, cells))
        return f"{name:<{name_w}}  {score:>6}  {body}  {status}".rstrip()

    header = row("student", "score", [short[g] for g in ids], "status")
    lines = [header, row("(max)", f"{total:g}", [f"{p:g}" for _, p in exercises]), "-" * len(header)]
    for r in results:
        grades = hand.get(r.student, {})
        pts = {c.grade_id: c.points if c.grade_id not in grades or grades[c.grade_id].manual is None
               else grades[c.grade_id].manual for c in r.cells}
        mark = {g: "h" if g in grades else "" for g in ids}
        lines.append(row(r.student, f"{final.get(r.student, r.score):g}" + ("h" if grades else ""),
                         [format(pts[g], "g") + mark[g] if g in pts else "-" for g in ids], r.status))
    lines += ["", "Why points were lost:"]
    before = len(lines)
    notes = []  # what the grader did or measured (a restored cell, CPU used against a limit): no points
    for r in results:
        if r.status != GRADED:
            lines.append(f"  {r.student}: {r.status}: {r.message}")
            continue
        lost = r.lost()
        if lost and len(lost) == len(r.cells) and all("not implemented yet" in (c.reason or "") for c in lost):
            lines.append(f"  {r.student}: nothing implemented: every exercise still raises NotImplementedError")
        else:
            lines += [f"  {r.student}: {c.grade_id} (-{c.max_points - c.points:g}): {first_line(c.reason)}"
                      for c in lost]
        if r.message:
            notes.append(f"  {r.student}: {r.message}")
        if r.seconds_late > 0:
            lines.append(f"  {r.student}: late by {late_text(r.seconds_late)}"
                         + (f" (-{r.late_penalty:g})" if r.late_penalty else " (no penalty)"))
    if len(lines) == before:
        lines.append("  nowhere: every submission has full marks")
    graded_by_hand = [(r, hand[r.student]) for r in results if hand.get(r.student)]
    if graded_by_hand:
        lines += ["", "Hand grades kept from the gradebook (h; formgrader's, applied on top of the automatic scores):"]
        for r, grades in graded_by_hand:
            lines += [f"  {r.student}: {n}" for n in hand_notes(r, grades)]
            lines.append(f"  {r.student}: final {final.get(r.student, r.final_score(grades)):g} "
                         f"(automatic {r.score:g})")
    if notes:
        lines += ["", "Notes (no points):", *notes]
    return "\n".join(lines)
