"""nbgrader's settings for the gptlib classroom, for teachers and students alike.

Found through ``JUPYTER_CONFIG_PATH`` (jupyterhub_config.py sets it) or copied to
``/etc/jupyter/nbgrader_config.py`` (the Dockerfile does). One course, ``ch6``; the teacher's
course folder is ``~/ch6`` (source/, release/, submitted/, autograded/, feedback/, gradebook.db),
inside the teacher's server root as the formgrader requires. Students fetch into their home.
"""

import os

c = get_config()  # noqa: F821 (nbgrader defines it)

c.CourseDirectory.course_id = os.environ.get("GPTLIB_CLASSROOM_COURSE", "ch6")
c.CourseDirectory.root = os.path.join(os.path.expanduser("~"), c.CourseDirectory.course_id)
# The exchange: a folder every user's server sees (a shared volume on Kubernetes).
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE_ROOT", "/srv/nbgrader/exchange")
# Run outputs, figures and feedback stay out of a release and of a submission.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "runs", "figures"]
# The longest check cell: A01's exercise 6.2, about 12 min with the real model on a laptop CPU
# (notebooks/assignments/README.md, "Time"); 1,800 s covers it. The smoke profile needs 300.
c.Execute.timeout = int(os.environ.get("GPTLIB_CLASSROOM_CELL_TIMEOUT", "1800"))
# Autograde judges every check cell in nbgrader's own process, not in the student's kernel
# (gptlib.assignments.nbgrader_hook): the kernel only answers the grader's questions, and the
# grader reads data/ from the assignment's source folder. Limits per question to the kernel.
from gptlib.assignments.nbgrader_hook import autograde_preprocessors  # noqa: E402

c.Autograde.autograde_preprocessors = autograde_preprocessors()
c.GradedExecute.check_seconds = float(os.environ.get("GPTLIB_CLASSROOM_CHECK_SECONDS", "300"))
c.GradedExecute.check_memory_mb = float(os.environ.get("GPTLIB_CLASSROOM_CHECK_MEMORY_MB", "6000"))
