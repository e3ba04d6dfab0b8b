"""nbgrader settings for this course (also used by `python -m autograder`, which adds only paths).

Sources with solutions and hidden tests live in solutions/, student releases in assignments/.
Everything nbgrader writes while grading — the gradebook, submissions, autograded notebooks,
feedback — goes under work/, which git ignores.
"""

import os

import autograder

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

here = os.path.dirname(os.path.abspath(__file__))
work = os.path.join(here, "work")
os.makedirs(work, exist_ok=True)

c.CourseDirectory.root = here
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.submitted_directory = os.path.join("work", "submitted")
c.CourseDirectory.autograded_directory = os.path.join("work", "autograded")
c.CourseDirectory.feedback_directory = os.path.join("work", "feedback")
c.CourseDirectory.solution_directory = os.path.join("work", "solution")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(work, "gradebook.db")

# Every released notebook starts with a note saying it is generated.
c.IncludeHeaderFooter.header = os.path.join(os.path.dirname(autograder.__file__), "templates",
                                           "release_header.ipynb")
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}

# Seconds one cell may run while autograding; a cell past it scores 0 and grading goes on.
c.Execute.timeout = 120

# Due dates, read by `python -m autograder grade`: a submission whose timestamp (nbgrader's
# timestamp.txt, or the time in an exchange folder's name) is past its assignment's due date is
# flagged late in grades.csv and the gradebook, and loses what nbgrader's late-submission rule
# says ("none": nothing, the default; "zero": everything; or a plugin class of the course's own).
c.Autograder.due_dates = {
    # "a1_images_and_convolution": "2027-02-01 17:00:00 UTC",
}
c.LateSubmissionPlugin.penalty_method = "none"

# One grading road (autograder/grading/road.py): `nbgrader autograde` (and formgrader) here grades
# through the judge and the sandbox, exactly as `python -m autograder grade` does — nbgrader's
# Execute never runs a submission, no hidden test runs in a student's kernel. The grader's own
# record (results, feedback pages, grades.csv) goes to work/graded/; generate_feedback writes the
# grader's sanitised pages; release_feedback leaves out submissions that have no exchange secret.
c.Autograde.sanitize_preprocessors = ["autograder.grading.road.Judge"]
c.Autograde.autograde_preprocessors = ["autograder.grading.road.Judged"]
c.Judge.out = os.path.join(work, "graded")
c.Judge.course = here
c.GenerateFeedback.preprocessors = []
c.GenerateFeedback.exporter_class = "autograder.grading.road.FeedbackPage"
c.ExchangeFactory.release_feedback = "autograder.grading.road.ReleaseFeedback"

# The class list, read by `python -m autograder grade`: nbgrader's student CSV (the file
# `nbgrader db student import` takes: id, first_name, last_name, email), relative to this folder.
# Its names and emails go into the gradebook, so formgrader shows them instead of "None".
# c.Autograder.roster = "roster.csv"
