"""Test-wide settings: Hypothesis runs derandomized (the same examples every run) without deadlines,
so a property test never fails by chance or by a slow machine."""

import os

from hypothesis import settings

settings.register_profile("course", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))
os.environ.setdefault("MPLBACKEND", "Agg")


# Scheduling for `pytest -n auto --dist loadgroup` (what `make test` runs): each test module is one
# group, as with --dist loadfile, except that the per-assignment modules are cut into one group per
# assignment so that two workers can share their long runs. Tests of one group stay on one worker,
# so module-scoped fixtures (a graded class, an executed notebook) are built once.
SPLIT_BY_ASSIGNMENT = {"test_exercises", "test_class_grading", "test_lectures"}


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        group = module
        if module in SPLIT_BY_ASSIGNMENT and hasattr(item, "callspec"):
            params = item.callspec.params
            key = params.get("assignment") or params.get("graded") or params.get("path")
            if key is not None:
                group = f"{module}:{getattr(key, 'stem', key)}"
        item.add_marker(pytest.mark.xdist_group(group))
