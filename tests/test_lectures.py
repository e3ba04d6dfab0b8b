"""Do the lectures execute top to bottom, and are the committed copies executed, with figures?"""

from __future__ import annotations

import ast

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

from autograder.grading.notebooks import nbgrader_meta

from .support import COURSE

LECTURES = sorted(COURSE.lectures.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_images_as_tensors.ipynb", "02_convolution.ipynb", "03_conv_layer.ipynb",
            "04_conv_backprop.ipynb", "05_pooling.ipynb", "06_lenet.ipynb", "07_classic_architectures.ipynb",
            "08_resnet.ipynb", "09_what_a_convnet_sees.ipynb"]


def test_the_arc_so_far_is_there():
    assert [p.name for p in LECTURES][: len(EXPECTED)] == EXPECTED


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_committed_lecture_is_executed_with_figures(path):
    """Readable on GitHub: every code cell ran in order, no errors or warnings shown, figures present."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert None not in counts, f"{path.name}: cells never executed; run `make lectures`"
    assert counts == sorted(counts), f"{path.name}: cells executed out of order; run `make lectures`"
    for cell in code:
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}: an error output is committed"
            assert not (out.output_type == "stream" and out.name == "stderr"), (
                f"{path.name}: stderr output committed: {out.text[:200]}")
    figures = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
    assert figures >= 5, f"{path.name}: only {figures} figures"
    assert all("execution" not in c.metadata for c in nb.cells), "volatile timing metadata committed"


@pytest.mark.slow
@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_executes_top_to_bottom(path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert not (out.output_type == "stream" and out.name == "stderr"), out.text[:300]


def _starts(cell, words: str) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip().startswith(words)


@pytest.mark.parametrize("path", LECTURES, ids=lambda p: p.stem)
def test_lecture_asks_the_reader(path):
    """Does the lecture ask as well as show: two or more "predict, then run" prompts, each followed by
    the code that answers it, and a reader's exercise with a scaffold and a hidden answer that runs?"""
    cells = nbformat.read(path, as_version=4).cells
    prompts = [i for i, c in enumerate(cells) if _starts(c, "**Predict, then run.**")]
    assert len(prompts) >= 2, f"{path.name}: {len(prompts)} 'Predict, then run.' prompt(s), expected at least 2"
    for i in prompts:
        assert any(c.cell_type == "code" for c in cells[i + 1:i + 3]), f"{path.name}: prompt {i} has no code after it"
        answer = next(c for c in cells[i + 1:] if c.cell_type == "code")  # its result: behind a click on the site
        assert "hide-output" in answer.metadata.get("tags", []), f"{path.name}: the result of prompt {i} is not hide-output"
    tries = [i for i, c in enumerate(cells) if _starts(c, "**Try it.**")]
    assert tries, f"{path.name}: no 'Try it.' exercise"
    for i in tries:
        after = [c for c in cells[i + 1:] if c.cell_type == "code"][:6]
        answers = [c for c in after if c.source.lstrip().startswith("# Answer")]
        assert answers, f"{path.name}: the exercise at cell {i} has no '# Answer' cell after it"
        answer = answers[0]
        assert "hide-cell" in answer.metadata.get("tags", []), f"{path.name}: the answer to cell {i} is not tagged hide-cell"
        jupyter = answer.metadata.get("jupyter", {})
        assert jupyter.get("source_hidden") is True and jupyter.get("outputs_hidden") is True, (
            f"{path.name}: answer {i} (code or outputs) shown in Jupyter")
        assert after.index(answer) >= 1, f"{path.name}: the exercise at cell {i} has no cell for the reader before its answer"


NOTEBOOKS = sorted([*LECTURES, *COURSE.solutions.glob("*/*.ipynb"), *COURSE.assignments.glob("*/*.ipynb"),
                    *(COURSE.root / "autograder" / "templates").glob("*.ipynb")])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(COURSE.root)))
def test_markdown_has_no_control_characters(path):
    """A TAB or another control character in markdown is a typo that renders wrongly ("7 \\times 7" typed
    in a Python string became "7 <TAB>imes 7"): only newlines belong there."""
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "markdown":
            bad = sorted({f"U+{ord(ch):04X}" for ch in cell.source if (ord(ch) < 32 and ch != "\n") or ord(ch) == 127})
            assert not bad, f"{path.name}, cell {i}: control characters {bad} in markdown"


# A lecture teaches the tools of the assignment that follows it, but must not answer it (issue 20): no
# function that the assignment asks for, by its name or under another name with its parameters.
LECTURE_ASSIGNMENT = {"09_what_a_convnet_sees": "a6_visualisation"}


def _python(source: str) -> ast.Module:
    return ast.parse(TransformerManager().transform_cell(source))  # magics (%config …) as plain Python


def _parameters(args: ast.arguments) -> tuple[str, ...]:
    return tuple([a.arg for a in [*args.posonlyargs, *args.args]] + ([f"*{args.vararg.arg}"] if args.vararg else [])
                 + [a.arg for a in args.kwonlyargs] + ([f"**{args.kwarg.arg}"] if args.kwarg else []))


def _functions(tree: ast.Module) -> list[tuple[str, tuple[str, ...], int]]:
    """(name, parameter names, line) of every function the code defines: def (nested too), and a lambda
    (named when it is assigned to a name)."""
    named = {id(node.value): target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
             for target in node.targets if isinstance(target, ast.Name)}
    return [(getattr(node, "name", None) or named.get(id(node), "<lambda>"), _parameters(node.args), node.lineno)
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]


def _exercises(assignment: str) -> tuple[set[str], dict[tuple[str, ...], str]]:
    """The functions an assignment asks for, from its source notebook: the names of its `NAME_code` cells
    (the cells the student writes), and the parameter names of the function NAME each of them defines."""
    (name,) = COURSE.notebooks(assignment)
    cells = nbformat.read(COURSE.solutions / assignment / f"{name}.ipynb", as_version=4).cells
    code = {nbgrader_meta(c)["grade_id"].removesuffix("_code"): c for c in cells
            if c.cell_type == "code" and nbgrader_meta(c).get("grade_id", "").endswith("_code")}
    signatures = {_parameters(node.args): f"{node.name}{_parameters(node.args)}"
                  for exercise, cell in code.items() for node in _python(cell.source).body
                  if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == exercise}
    defined = {s.partition("(")[0] for s in signatures.values()}
    assert code and set(code) <= defined, (
        f"{assignment}: the cells of {sorted(set(code) - defined)} define no function of that name")
    return set(code), signatures


@pytest.mark.parametrize("lecture", sorted(LECTURE_ASSIGNMENT), ids=lambda s: s)
def test_lecture_does_not_answer_its_assignment(lecture):
    """Lecture 09 shows each of a6's tools step by step; a function a student could paste into a6 (one named
    like an exercise, or with an exercise function's parameters in the same order) would answer it."""
    assignment = LECTURE_ASSIGNMENT[lecture]
    names, signatures = _exercises(assignment)
    cells = nbformat.read(COURSE.lectures / f"{lecture}.ipynb", as_version=4).cells
    found = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        for fn, params, line in _functions(_python(cell.source)):
            if fn in names:
                found.append(f"cell {i}, line {line}: defines `{fn}`, an exercise of {assignment}")
            elif params in signatures:
                found.append(f"cell {i}, line {line}: `{fn}{params}` has the parameters of {assignment}'s "
                             f"`{signatures[params]}`")
    assert not found, (f"{lecture} answers {assignment}: show the steps inline or with a general helper "
                       "instead:\n" + "\n".join(found))
