"""For every assignment: does every test cell pass on the solution, fail on the blank release, and
catch each catalogued wrong answer (and nothing unrelated)?

These run the notebook's code in-process for speed; test_grading.py and test_class_grading.py run
the same submissions through the real grade command (sandboxed kernels, nbgrader's gradebook) and check that the scores agree.

One test class per assignment (``TestA1`` …): ``make test`` runs ``pytest-xdist --dist loadscope``,
which keeps a class on one worker and spreads the classes over the workers.
"""

from __future__ import annotations


import ast

import pytest

from autograder import catalogue, secret
from autograder.grading.assemble import answer_exercise
from autograder.grading.notebooks import graded_cells, solution_sources

from .support import COURSE, graded_version, released_stubs, run_cells, source_nb


def exercises(assignment: str) -> list[str]:
    return [gid for gid, _ in graded_cells(source_nb(assignment))]


# Defaults whose value no test can observe, and why.
UNOBSERVABLE = {
    ("conv_net_loss_code", "__init__", "seed"): "any seed draws equally good weights",
    ("trace_shapes_code", "hook", "name"): "the closure idiom name=name, not part of the interface",
    ("integrated_gradients_code", "integrated_gradients", "baseline"): "the mutation's baseline=0 is the zero "
    "baseline None stands for: x - 0 is x",
    **{("class_visualisation_code", "class_visualisation", arg): "the student's own choice: the exercise asks "
       "for an image the network takes for class y, reached with whatever settings they pick"
       for arg in ("steps", "lr", "l2", "blur_every", "jitter")},
}


def _changed(node: ast.expr) -> str | None:
    """A different value for a default: what a student who changed it would have."""
    value = ast.literal_eval(node)
    if isinstance(value, bool):
        return repr(not value)
    if isinstance(value, int):
        return repr(value + 1)
    if isinstance(value, float):
        return repr(value * 100 if value else 1.0)
    if isinstance(value, str):
        return repr("reflect" if value == "zero" else value + "x")
    if isinstance(value, tuple) and value and isinstance(value[0], int):
        return repr((value[0] * 2,) + value[1:] if len(value) != 3 or value[0] != 1 else (1, 14, 14))
    if value is None:
        return "0"
    return None


def default_mutations(assignment: str) -> list[tuple[str, str, str, str]]:
    """(solution cell, function, argument, the cell's code with that default changed), for every
    default of every function the release's solution cells define."""
    out = []
    for cell, code in solution_sources(source_nb(assignment)).items():
        lines = code.splitlines(keepends=True)
        for node in ast.walk(ast.parse(code)):
            if not isinstance(node, ast.FunctionDef):
                continue
            args = node.args
            pairs = list(zip(args.args[len(args.args) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if (cell, node.name, arg.arg) in UNOBSERVABLE:
                    continue
                new = _changed(default)
                assert new is not None, f"no change known for the default of {node.name}({arg.arg}=...)"
                line = lines[default.lineno - 1]
                lines_changed = list(lines)
                lines_changed[default.lineno - 1] = line[:default.col_offset] + new + line[default.end_col_offset:]
                out.append((cell, node.name, arg.arg, "".join(lines_changed)))
    return out


def pytest_generate_tests(metafunc):
    if "wrong" in metafunc.fixturenames:
        wrong = catalogue.load(metafunc.cls.assignment).WRONG_ANSWERS
        metafunc.parametrize("wrong", wrong, ids=[wa.id for wa in wrong])
    if "mutation" in metafunc.fixturenames:
        found = default_mutations(metafunc.cls.assignment)
        metafunc.parametrize("mutation", found, ids=[f"{c}:{f}({a}=...)" for c, f, a, _ in found])


class ExerciseTests:
    assignment: str  # set by each subclass below

    def test_exercise_ids_follow_the_convention(self):
        """Does every test cell have a solution cell named <exercise>_code, and every wrong answer a real exercise?"""
        a = self.assignment
        solutions = set(solution_sources(source_nb(a)))
        assert {f"{gid}_code" for gid in exercises(a)} <= solutions
        cat = catalogue.load(a)
        unknown = {wa.exercise for wa in cat.WRONG_ANSWERS} - set(exercises(a))
        assert not unknown, f"catalogue names exercises the notebook lacks: {unknown}"
        assert set(cat.DEPENDS) <= set(exercises(a))

    def test_every_exercise_has_wrong_answers(self):
        covered = {wa.exercise for wa in catalogue.load(self.assignment).WRONG_ANSWERS}
        assert covered == set(exercises(self.assignment)), f"no wrong answers for {set(exercises(self.assignment)) - covered}"

    def test_solution_passes_every_test_cell(self):
        """Does the instructor's solution pass every test cell, hidden tests included?"""
        verdicts = run_cells(graded_version(self.assignment))
        failed = {gid: v.error for gid, v in verdicts.items() if not v.passed}
        assert set(verdicts) == set(exercises(self.assignment))
        assert not failed, failed

    @pytest.mark.parametrize("other", [b"another course's secret", b"next term's secret"])
    def test_solution_passes_the_hidden_tests_drawn_from_other_secrets(self, other):
        """No false failures: each course's secret draws other hidden configurations (the demo's own
        secret once drew a DenseNet case PyTorch cannot run); the solution must pass them all."""
        with secret.using(other):
            verdicts = run_cells(graded_version(self.assignment))
        failed = {gid: v.error for gid, v in verdicts.items() if not v.passed}
        assert not failed, failed

    def test_blank_release_fails_every_test_cell(self):
        """Does every test cell fail on the untouched release, saying the function is not implemented?"""
        verdicts = run_cells(graded_version(self.assignment, released_stubs(self.assignment)))
        assert set(verdicts) == set(exercises(self.assignment))
        for gid, verdict in verdicts.items():
            assert not verdict.passed, f"{gid} gives free points on the blank release"
            assert "not implemented yet" in verdict.error, (gid, verdict.error)

    def test_wrong_answer_loses_points(self, wrong):
        """Does this realistic wrong answer fail its exercise, with a message naming the function, while
        exercises that do not call it keep their points?"""
        a = self.assignment
        solution = solution_sources(source_nb(a))[wrong.cell]
        verdicts = run_cells(graded_version(a, {wrong.cell: wrong.apply(solution)}))
        verdict = verdicts[wrong.exercise]
        assert not verdict.passed, f"{wrong.id!r} passes every test of {wrong.exercise}"
        assert any(name in verdict.error for name in wrong.names), verdict.error
        allowed = {wrong.exercise, *catalogue.load(a).DEPENDS.get(wrong.exercise, ())}
        collateral = {gid for gid, v in verdicts.items() if not v.passed} - allowed
        assert not collateral, f"{wrong.id!r} also fails unrelated exercises {collateral}"

    def test_a_changed_default_loses_the_exercise(self, mutation):
        """The release's signatures are part of the contract: does each exercise call its functions once
        by their defaults, so that a solution whose default differs loses that exercise?"""
        cell, function, arg, code = mutation
        exercise = answer_exercise(cell)
        verdict = run_cells(graded_version(self.assignment, {cell: code}), only=exercise)[exercise]
        assert not verdict.passed, f"{function}({arg}=...) changed, and {exercise} still passes"

    def test_wrong_answers_are_edits_of_the_current_solution(self):
        """Does every catalogue edit still apply to the solution exactly once (and change it)?"""
        solutions = solution_sources(source_nb(self.assignment))
        cat = catalogue.load(self.assignment)
        for wa in cat.WRONG_ANSWERS:
            assert wa.apply(solutions[wa.cell]) != solutions[wa.cell], wa.id
        assert cat.DEMO_BUG in {wa.id for wa in cat.WRONG_ANSWERS}


for _a in COURSE.assignment_ids():
    _name = "Test" + _a.split("_")[0].capitalize()  # TestA1, TestA2, ...
    globals()[_name] = type(_name, (ExerciseTests,), {"assignment": _a, "__module__": __name__})


@pytest.mark.parametrize("label, words", [
    ("softmax probability climbed instead of the score", "not the softmax probability"),
    ("map normalised to a maximum of 1", "return the raw map"),
    ("map normalised to [0, 1]", "return the raw map"),
    ("ReLU on the layer's output A instead of on the weighted sum", "a ReLU on the layer's output A"),
    ("the average gradient not multiplied by (x - baseline)", "without the factor (x - baseline)"),
    ("the class score ascended instead of the loss", "a step up the class score"),
    ("independent instead of cascading randomisation", "cascade: each layer stays randomised"),
    ("randomises the caller's model in place (no copy)", "copy.deepcopy(model)"),
])
def test_a6_hint_names_the_mistake(label, words):
    """The hint of a wrong answer that used to get a generic one names what went wrong: a class
    visualisation climbing the softmax stalls at a middling probability (climb the raw score, not only
    more steps); a normalised saliency or Grad-CAM map is the raw map's job; Grad-CAM's ReLU is on the sum."""
    a = "a6_visualisation"
    (wrong,) = [wa for wa in catalogue.load(a).WRONG_ANSWERS if wa.label == label]
    solution = solution_sources(source_nb(a))[wrong.cell]
    verdict = run_cells(graded_version(a, {wrong.cell: wrong.apply(solution)}), only=wrong.exercise)[wrong.exercise]
    assert not verdict.passed and words in verdict.error, verdict.error
