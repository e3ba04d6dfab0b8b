"""Is assignments/ exactly what the release command makes from solutions/, with nothing leaked?"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autograder.grading.notebooks import nbgrader_meta

from .support import COURSE, ROOT, release_nb, source_nb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    proc = subprocess.run([sys.executable, "-m", "autograder", "release", "--to", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_assignments_folder_is_the_release_of_solutions(fresh_release, assignment):
    """Regenerate with `python -m autograder release` if this fails; never edit assignments/ by hand."""
    committed = sorted(p.relative_to(COURSE.assignments) for p in (COURSE.assignments / assignment).rglob("*")
                       if p.is_file())
    made = sorted(p.relative_to(fresh_release) for p in (fresh_release / assignment).rglob("*") if p.is_file())
    assert committed == made
    for rel in made:
        ours, theirs = COURSE.assignments / rel, fresh_release / rel
        if rel.suffix == ".ipynb":
            assert json.loads(ours.read_text()) == json.loads(theirs.read_text()), (
                f"{rel} differs from a fresh release: run `python -m autograder release`")
        else:
            assert ours.read_bytes() == theirs.read_bytes(), rel


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_release_leaks_no_solution_and_no_hidden_test(assignment):
    text = json.dumps(release_nb(assignment))
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert "hidden_seed" not in text, "hidden test seeds must not reach students"
    for cell in release_nb(assignment).cells:  # a function may have a seed parameter; a test cell no seed
        if nbgrader_meta(cell).get("grade") and not nbgrader_meta(cell).get("solution"):
            assert "seed=" not in cell.source, f"{nbgrader_meta(cell)['grade_id']}: a seed reaches students"
    source_cells = {nbgrader_meta(c).get("grade_id"): c for c in source_nb(assignment).cells}
    for cell in release_nb(assignment).cells:
        meta = nbgrader_meta(cell)
        if meta.get("solution"):
            assert "raise NotImplementedError()" in cell.source
            assert "### BEGIN SOLUTION" in source_cells[meta["grade_id"]].source
    assert "Generated file" in release_nb(assignment).cells[0].source


# The rules a student reads are stated once, in the release header (autograder/templates/
# release_header.ipynb): only what a function returns, and the functions an exercise forbids, cost
# points. Wording of the older rule ("may import only ...; anything else scores 0") contradicts it.
OLD_RULES = ("may import only", "import only `numpy`", "anything else scores 0", "uses anything else",
             "no dynamic code")


@pytest.mark.parametrize("assignment", COURSE.assignment_ids())
def test_release_states_the_rules_once(assignment):
    """The header says what costs points, and no cell of the release (or its source) contradicts it."""
    header = release_nb(assignment).cells[0].source
    assert "never cost points" in header and "forbid" in header
    for nb, where in [(release_nb(assignment), "release"), (source_nb(assignment), "solutions")]:
        for i, cell in enumerate(nb.cells):
            old = [w for w in OLD_RULES if w in cell.source]
            assert not old, f"{assignment} ({where}), cell {i}: the old rule's wording {old} contradicts the header"


def test_unknown_assignment_is_refused():
    proc = subprocess.run([sys.executable, "-m", "autograder", "release", "a7_nothing"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown assignment 'a7_nothing'; known: a1_images")
