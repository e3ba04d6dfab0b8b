"""Test-wide settings: Hypothesis runs derandomized (the same examples every run) without deadlines,
so a property test never fails by chance or by a slow machine; and one course secret for every
test, so that the hidden tests draw the same inputs in the notebook's own process and through the
``grade`` command, whatever secret the machine's course folder holds."""

import os

from hypothesis import settings

settings.register_profile("course", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["AUTOGRADER_SECRET"] = "a-course-secret-for-the-tests-only"  # tests/support.py SECRET
