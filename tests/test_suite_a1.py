"""Does every a1 test cell pass on the solution, fail on the blank release, and catch each
catalogued wrong answer (and nothing else)?

These run the notebook's code in-process for speed; test_grading.py runs the same submissions
through real nbgrader and checks that the scores agree.
"""

from __future__ import annotations

import pytest

from autograder import catalogue
from autograder.grading.notebooks import graded_cells, solution_sources

from .support import graded_version, released_stubs, run_cells, source_nb

A1 = "a1_images_and_convolution"
CAT = catalogue.load(A1)
EXERCISES = [gid for gid, _ in graded_cells(source_nb(A1))]


def test_exercise_ids_follow_the_convention():
    """Does every test cell have a solution cell named <exercise>_code, and every wrong answer a real exercise?"""
    solutions = set(solution_sources(source_nb(A1)))
    assert solutions == {f"{gid}_code" for gid in EXERCISES}
    unknown = {wa.exercise for wa in CAT.WRONG_ANSWERS} - set(EXERCISES)
    assert not unknown, f"catalogue names exercises the notebook lacks: {unknown}"


def test_every_exercise_has_wrong_answers():
    """Is there at least one catalogued wrong answer per exercise?"""
    covered = {wa.exercise for wa in CAT.WRONG_ANSWERS}
    assert covered == set(EXERCISES), f"no wrong answers for {set(EXERCISES) - covered}"


def test_solution_passes_every_test_cell():
    """Does the instructor's solution pass every test cell, hidden tests included?"""
    verdicts = run_cells(graded_version(A1))
    failed = {gid: v.error for gid, v in verdicts.items() if not v.passed}
    assert set(verdicts) == set(EXERCISES)
    assert not failed, failed


def test_blank_release_fails_every_test_cell():
    """Does every test cell fail on the untouched release, saying the function is not implemented?"""
    verdicts = run_cells(graded_version(A1, released_stubs(A1)))
    assert set(verdicts) == set(EXERCISES)
    for gid, verdict in verdicts.items():
        assert not verdict.passed, f"{gid} gives free points on the blank release"
        assert "not implemented yet" in verdict.error, (gid, verdict.error)


@pytest.mark.parametrize("wrong", CAT.WRONG_ANSWERS, ids=lambda wa: wa.id)
def test_wrong_answer_loses_points(wrong):
    """Does this realistic wrong answer fail its exercise, with a message naming the function, while
    exercises that do not call it keep their points?"""
    solution = solution_sources(source_nb(A1))[wrong.cell]
    verdicts = run_cells(graded_version(A1, {wrong.cell: wrong.apply(solution)}))
    verdict = verdicts[wrong.exercise]
    assert not verdict.passed, f"{wrong.id!r} passes every test of {wrong.exercise}"
    assert any(name in verdict.error for name in wrong.names), verdict.error
    allowed = {wrong.exercise, *CAT.DEPENDS.get(wrong.exercise, ())}
    collateral = {gid for gid, v in verdicts.items() if not v.passed} - allowed
    assert not collateral, f"{wrong.id!r} also fails unrelated exercises {collateral}"


def test_wrong_answers_are_edits_of_the_current_solution():
    """Does every catalogue edit still apply to the solution exactly once (and change it)?"""
    solutions = solution_sources(source_nb(A1))
    for wa in CAT.WRONG_ANSWERS:
        assert wa.apply(solutions[wa.cell]) != solutions[wa.cell], wa.id
    assert CAT.DEMO_BUG in {wa.id for wa in CAT.WRONG_ANSWERS}
