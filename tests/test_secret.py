"""autograder.secret: are the hidden cases one student's and one submission's, and too wide to search?"""

from __future__ import annotations

from autograder import secret
from autograder.suites import a1_images_and_convolution as suite

KEY = b"a course secret of enough characters"


def test_hidden_seeds_are_wide():
    """Is a hidden seed 62 bits wide (a 31-bit seed could be searched from one leaked input)?"""
    seeds = [secret.seed(KEY, "a1", f"ex{i}") for i in range(200)]
    assert max(seeds) < 2**62 and max(seeds) > 2**58 and len(set(seeds)) == 200


def test_each_student_and_each_submission_draws_its_own_cases_and_a_regrade_the_same():
    salt = secret.submission_salt
    alice1, alice2, bob1 = salt("alice", "d1"), salt("alice", "d2"), salt("bob", "d1")
    with secret.using(KEY, alice1):
        first = suite.hidden_seed("pad2d")
    with secret.using(KEY, alice1):
        assert suite.hidden_seed("pad2d") == first  # the same submission regraded
    with secret.using(KEY, alice2):
        assert suite.hidden_seed("pad2d") != first  # a new submission of the same student
    with secret.using(KEY, bob1):
        assert suite.hidden_seed("pad2d") != first  # another student, the same bytes
    with secret.using(KEY):
        assert suite.hidden_seed("pad2d") == secret.seed(KEY, "a1_images_and_convolution", "pad2d")


def test_the_salt_is_restored_after_the_block():
    with secret.using(KEY, "outer"):
        with secret.using(KEY, "inner"):
            pass
        assert suite.hidden_seed("x") == secret.seed(KEY, "a1_images_and_convolution", "x", salt="outer")
