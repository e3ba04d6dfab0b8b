"""Catalogues of realistic wrong answers, one module per assignment.

Each :class:`WrongAnswer` is a small edit of the instructor's solution cell — the bug a student
really writes: a reshape for a transpose, floor for ceil, the kernel left unflipped. The tests
apply every one, grade the result and require that the exercise loses points with a message that
names it. ``DEPENDS`` says which other exercises call an exercise's functions (a bug there may
cost points there too, and nowhere else).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class WrongAnswer:
    exercise: str  # grade_id of the exercise's test cell
    label: str  # what the student got wrong, in a few words
    edits: tuple[tuple[str, str], ...]  # (find, replace) pairs applied to the solution cell
    names: tuple[str, ...] = ()  # function names a failure message must mention (default: any of the cell's)

    @property
    def cell(self) -> str:
        """grade_id of the solution cell the edits apply to."""
        return f"{self.exercise}_code"

    @property
    def id(self) -> str:
        return f"{self.exercise}: {self.label}"

    def apply(self, source: str) -> str:
        """The solution cell's code with this bug in it. Each ``find`` must occur exactly once."""
        for find, replace in self.edits:
            count = source.count(find)
            if count != 1:
                raise ValueError(f"wrong answer {self.id!r}: {find!r} occurs {count} times in the "
                                 f"{self.cell} solution; update the catalogue to match the solution")
            source = source.replace(find, replace)
        return source


def load(assignment: str) -> ModuleType:
    """The catalogue module of ``assignment`` (WRONG_ANSWERS, DEPENDS, DEMO_BUG)."""
    return importlib.import_module(f"{__name__}.{assignment}")


def rounds(wrong_answers: list[WrongAnswer], depends: dict[str, tuple[str, ...]]) -> list[list[WrongAnswer]]:
    """Pack wrong answers into as few submissions as possible, so one real grading run covers them.

    A submission holds at most one wrong answer per exercise, and never two exercises where one
    calls the other: each failing test cell can then be blamed on the one bug in its own exercise.
    """
    def related(a: str, b: str) -> bool:
        return a == b or b in depends.get(a, ()) or a in depends.get(b, ())

    remaining = list(wrong_answers)
    packed: list[list[WrongAnswer]] = []
    while remaining:
        group: list[WrongAnswer] = []
        for wa in list(remaining):
            if all(not related(wa.exercise, other.exercise) for other in group):
                group.append(wa)
                remaining.remove(wa)
        packed.append(group)
    return packed
