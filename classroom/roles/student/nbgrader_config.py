"""A student's nbgrader: their id is their hub user name.

nbgrader names a submission by the unix account that submits it. Where several students share
one account (the ``simple`` spawner; every Kubernetes pod's ``jovyan``), that would name them
all alike, so the id comes from the hub, which says who logged in. With one account per
student (the ``system`` spawner) the two names are the same.
"""

import os

c = get_config()  # noqa: F821 (nbgrader defines it)

if os.environ.get("JUPYTERHUB_USER"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
