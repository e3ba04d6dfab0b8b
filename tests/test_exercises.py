"""For every assignment: does every test cell pass on the solution, fail on the blank release, and
catch each catalogued wrong answer (and nothing unrelated)?

These run the notebook's code in-process for speed; test_grading.py and test_class_grading.py run
the same submissions through real nbgrader and check that the scores agree.
"""

from __future__ import annotations

import pytest

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, solution_sources

from .support import COURSE, graded_version, released_stubs, run_cells, source_nb

ASSIGNMENTS = COURSE.assignment_ids()
WRONG = [(a, wa) for a in ASSIGNMENTS for wa in catalogue.load(a).WRONG_ANSWERS]


def exercises(assignment: str) -> list[str]:
    return [gid for gid, _ in graded_cells(source_nb(assignment))]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercise_ids_follow_the_convention(assignment):
    """Does every test cell have a solution cell named <exercise>_code, and every wrong answer a real exercise?"""
    solutions = set(solution_sources(source_nb(assignment)))
    assert {f"{gid}_code" for gid in exercises(assignment)} <= solutions
    cat = catalogue.load(assignment)
    unknown = {wa.exercise for wa in cat.WRONG_ANSWERS} - set(exercises(assignment))
    assert not unknown, f"catalogue names exercises the notebook lacks: {unknown}"
    assert set(cat.DEPENDS) <= set(exercises(assignment))


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_exercise_has_wrong_answers(assignment):
    covered = {wa.exercise for wa in catalogue.load(assignment).WRONG_ANSWERS}
    assert covered == set(exercises(assignment)), f"no wrong answers for {set(exercises(assignment)) - covered}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_passes_every_test_cell(assignment):
    """Does the instructor's solution pass every test cell, hidden tests included?"""
    verdicts = run_cells(graded_version(assignment))
    failed = {gid: v.error for gid, v in verdicts.items() if not v.passed}
    assert set(verdicts) == set(exercises(assignment))
    assert not failed, failed


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_release_fails_every_test_cell(assignment):
    """Does every test cell fail on the untouched release, saying the function is not implemented?"""
    verdicts = run_cells(graded_version(assignment, released_stubs(assignment)))
    assert set(verdicts) == set(exercises(assignment))
    for gid, verdict in verdicts.items():
        assert not verdict.passed, f"{gid} gives free points on the blank release"
        assert "not implemented yet" in verdict.error, (gid, verdict.error)


@pytest.mark.parametrize("assignment, wrong", WRONG, ids=[f"{a.split('_')[0]}-{wa.id}" for a, wa in WRONG])
def test_wrong_answer_loses_points(assignment, wrong):
    """Does this realistic wrong answer fail its exercise, with a message naming the function, while
    exercises that do not call it keep their points?"""
    solution = solution_sources(source_nb(assignment))[wrong.cell]
    verdicts = run_cells(graded_version(assignment, {wrong.cell: wrong.apply(solution)}))
    verdict = verdicts[wrong.exercise]
    assert not verdict.passed, f"{wrong.id!r} passes every test of {wrong.exercise}"
    assert any(name in verdict.error for name in wrong.names), verdict.error
    allowed = {wrong.exercise, *catalogue.load(assignment).DEPENDS.get(wrong.exercise, ())}
    collateral = {gid for gid, v in verdicts.items() if not v.passed} - allowed
    assert not collateral, f"{wrong.id!r} also fails unrelated exercises {collateral}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_answers_are_edits_of_the_current_solution(assignment):
    """Does every catalogue edit still apply to the solution exactly once (and change it)?"""
    solutions = solution_sources(source_nb(assignment))
    cat = catalogue.load(assignment)
    for wa in cat.WRONG_ANSWERS:
        assert wa.apply(solutions[wa.cell]) != solutions[wa.cell], wa.id
    assert cat.DEMO_BUG in {wa.id for wa in cat.WRONG_ANSWERS}
