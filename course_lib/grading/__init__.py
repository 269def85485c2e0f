"""Grading students' exercise notebooks: nbval runs them, each kernel in a sandbox, the verdicts outside it.

One module per concern:

- `course_lib.grading.evidence`     what hidden tests record (``expect``, ``expect_raises``, ``expect_accuracy``)
                                    and the one rule that says when two records agree
- `course_lib.grading.submissions`  finding and reading the submissions, refusing links and duplicates
- `course_lib.grading.sandbox`      the bubblewrap sandbox and the kernel launcher
- `course_lib.grading.runner`       one notebook through nbval, its kernel sandboxed, cell outcomes as data
- `course_lib.grading.nbval_plugin` the pytest plugin that tells nbval where the kernel is and writes the outcomes
- `course_lib.grading.verdicts`     parts, the solution's reference records, and each part's verdict
- `course_lib.grading.reports`      grades.csv, feedback, logs, the manifest, and merging shards
- `course_lib.grading.batch`        a whole batch: reference runs, submissions, verdicts, outputs
- `course_lib.grading.cli`          the ``course-grade`` and ``course-grade-merge`` commands

Nothing is imported here: a kernel that records evidence, and the sandbox's launcher, load only what they use.
"""
