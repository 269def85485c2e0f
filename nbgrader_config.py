"""nbgrader settings for this course (nbgrader reads this file from the folder it runs in).

The solution notebooks carry nbgrader's markers and metadata, so nbgrader can release and autograde them: put
``solutions/NN_topic.ipynb`` at ``source/NN_topic/NN_topic.ipynb`` below your nbgrader course folder, then
``nbgrader generate_assignment NN_topic`` and, once submissions are collected, ``nbgrader autograde NN_topic``.
In nbgrader the hidden tests run in the student's own kernel and its feedback shows their code; ``course-grade``
(see the README) is the course's sandboxed grader.
"""

import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

# Every experiment at its small scale, figures without a display: what the course's own grader does.
os.environ.setdefault("COURSE_SCALE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")

# The set-up cell imports torch and loads MNIST; training cells take tens of seconds on a laptop CPU.
c.Execute.timeout = 300
c.Execute.startup_timeout = 120

# The student's stub; the course's own exercises (course-make-exercises) also keep a per-answer hint in it.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
