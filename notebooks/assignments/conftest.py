"""The assignment notebooks are not collected by nbval here: tests/test_nbgrader.py runs them
the way they are graded (nbgrader's validate and autograde under the grader's profile),
requires every cell of the solutions to run, and runs the untouched release and the cheats
too. Running them a third time under nbval would only add minutes to the suite."""

collect_ignore_glob = ["A[0-9][0-9]_*.ipynb"]
