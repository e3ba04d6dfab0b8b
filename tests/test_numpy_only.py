"""The NumPy-only rule: is every route to torch or scipy found, attributed to the right exercise, and
are innocent notebooks (scratch imports, %timeit, the solutions) left alone?"""

from __future__ import annotations

import pytest
from nbformat.v4 import new_code_cell

from autograder.grading import numpy_only
from autograder.grading.notebooks import solution_sources, student_version

from .support import COURSE, release_nb, source_nb

A1, A2 = "a1_images_and_convolution", "a2_conv_layer"


def submission(assignment, answers=None, extra_cells=()):
    nb = student_version(release_nb(assignment), source_nb(assignment), answers or {})
    for index, code in extra_cells:
        nb.cells.insert(index, new_code_cell(code))
    return nb


def verdict(assignment, answers=None, extra_cells=()):
    return numpy_only.check_notebook(submission(assignment, answers, extra_cells), source_nb(assignment))


@pytest.mark.parametrize("assignment", [a for a in COURSE.assignment_ids() if numpy_only.applies_to(a)])
def test_solutions_and_releases_are_clean(assignment):
    assert verdict(assignment) == {}
    assert numpy_only.check_notebook(release_nb(assignment), source_nb(assignment)) == {}


def test_applies_to_the_numpy_assignments():
    assert numpy_only.applies_to(A1) and numpy_only.applies_to(A2)
    assert not numpy_only.applies_to("a9_not_there")


def sol(assignment, cell):
    return solution_sources(source_nb(assignment))[cell]


@pytest.mark.parametrize("label, code, expected", [
    ("import torch", "import torch\n", "imports torch"),
    ("from scipy import signal", "from scipy import signal\n", "imports from scipy"),
    ("the course's helpers", "from autograder import reference\n", "imports from autograder"),
    ("the test cells' suite", "_ = suite.ref\n", "uses suite"),
    ("run-time import", "_ = __import__('to' + 'rch')\n", "uses __import__"),
    ("importlib", "import importlib\n", "imports importlib"),
    ("sys.modules", "import sys\n", "imports sys"),
    ("builtins through a module", "_ = np.__builtins__\n", "__builtins__"),
    ("getattr with a computed name", "_ = getattr(np, 'lin' + 'alg')\n", "getattr"),
    ("exec", "exec('import torch')\n", "uses exec"),
    ("shell escape", "!pip install scipy\n", "get_ipython"),
])
def test_each_route_is_charged_to_its_exercise(label, code, expected):
    charged = verdict(A2, {"im2col_code": code + sol(A2, "im2col_code")})
    assert "im2col" in charged and expected in charged["im2col"], (label, charged)
    # the fast layer calls im2col, so it inherits the charge; unrelated exercises keep theirs
    assert set(charged) <= {"im2col", "conv_forward_fast", "conv_backward_fast"}


def test_torch_disguised_as_np_taints_every_user_of_np():
    charged = verdict(A2, {"im2col_code": "import torch as np\n" + sol(A2, "im2col_code")})
    assert "imports torch" in charged["im2col"]
    assert "uses np, which comes from im2col_code" in charged["col2im"]


def test_import_inside_a_function_body():
    code = sol(A2, "col2im_code").replace("    N, C, H, W = x_shape", "    import torch\n    N, C, H, W = x_shape")
    assert "imports torch" in verdict(A2, {"col2im_code": code})["col2im"]


def test_helper_defined_in_an_added_cell_taints_its_users():
    code = sol(A1, "correlate2d_code").replace("    H, W = image.shape", "    helper()\n    H, W = image.shape")
    charged = verdict(A1, {"correlate2d_code": code},
                      [(3, "import torch\ndef helper():\n    return torch.zeros(1)")])
    assert "helper, which comes from added cell" in charged["correlate2d"]
    assert set(charged) == {"correlate2d", "convolve2d", "sobel"}  # both call correlate2d


def test_scratch_cells_and_timing_are_innocent():
    charged = verdict(A1, extra_cells=[
        (5, "import torch\nx = torch.ones(3)\nimage = x.numpy()\nprint(image)"),  # comparing with torch
        (6, "%timeit correlate2d(np.ones((5, 5)), np.ones((3, 3)))\n%matplotlib inline"),
        (7, "%%time\nfor i in range(3):\n    pass"),
    ])
    assert charged == {}


def test_run_time_code_in_an_added_cell_charges_every_exercise():
    charged = verdict(A1, extra_cells=[(4, "exec('import torch as tt')")])
    assert set(charged) == {gid for gid in charged} and len(charged) == 10
    assert all("could be used by any exercise" in reason for reason in charged.values())


def test_edits_to_instructor_cells_are_ignored():
    """nbgrader runs its own copy of locked and test cells, so what a submission writes there is moot."""
    nb = submission(A1)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "setup":
            cell.source += "\nimport torch"
    assert numpy_only.check_notebook(nb, source_nb(A1)) == {}


def test_explanation_is_actionable():
    text = numpy_only.explain("im2col", "im2col_code: line 1: imports torch")
    assert text.startswith("im2col: NumPy only — im2col_code: line 1: imports torch") and "scores 0" in text
