"""Test-wide settings: Hypothesis runs derandomized (the same examples every run) without deadlines,
so a property test never fails by chance or by a slow machine."""

import os

from hypothesis import settings

settings.register_profile("course", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "course"))
os.environ.setdefault("MPLBACKEND", "Agg")
