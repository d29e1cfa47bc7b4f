"""JupyterHub for a gptlib classroom on one machine: a teacher and students, nbgrader's exchange.

Start it with ``jupyterhub -f classroom/jupyterhub_config.py`` (see classroom/README.md);
tests/test_classroom_hub.py starts the hub from this same file. Everything that differs between
a try-out, the test and a real class is an environment variable:

GPTLIB_CLASSROOM_SPAWNER   ``simple`` (default): every user's server runs as the hub's own unix
                           user, in a home folder of its own under GPTLIB_CLASSROOM_HOMES, and
                           anyone may log in with the dummy authenticator. For a try-out and
                           for the test only: one unix user means no isolation between users.
                           ``system``: each user is a unix account (PAM login, the server runs
                           as that user in their home); nbgrader's exchange then keeps students
                           apart by unix permissions. Run the hub as root for this.
GPTLIB_CLASSROOM_TEACHERS  comma-separated user names that get the formgrader (default teacher)
GPTLIB_CLASSROOM_STATE     the hub's database, cookie secret and proxy pid (default /srv/jupyterhub)
GPTLIB_CLASSROOM_HOMES     the homes of the ``simple`` spawner (default /srv/classroom/home)
GPTLIB_CLASSROOM_EXCHANGE  nbgrader's exchange root (default /srv/nbgrader/exchange)
GPTLIB_CLASSROOM_IP, _PORT the public address (default 127.0.0.1:8000)
GPTLIB_CLASSROOM_HUB_PORT, _PROXY_API_PORT  the hub's and the proxy's own ports (8081, 8001)
GPTLIB_CLASSROOM_API_TOKEN if set, a service ``classroom-admin`` holds this token with the
                           rights to create users, start their servers and issue their tokens
GPTLIB_CLASSROOM_SHARED_STORE  a folder the teacher filled with ``python -m gptlib cache warm
                           --into FOLDER``, readable (not writable) by everyone: passed to every
                           server as GPTLIB_SHARED_STORE (kernels map the base weights and take
                           the frozen activations from it; gptlib's grader never reads it)
GPTLIB_CLASSROOM_RUN_SLOTS how many lab runs the machine trains at once over the whole class
                           (default: its cores; 0 turns the queue off). The hub makes that many
                           slot files, readable by all, in GPTLIB_CLASSROOM_RUN_SLOTS_DIR (default:
                           gptlib-run-slots beside the state folder) and passes the folder as
                           GPTLIB_RUN_SLOTS; each run gets cores // slots threads
                           (OMP_NUM_THREADS, unless set). See gptlib/support/run_slots.py.
GPTLIB_GRADING_PROFILE     passed to the teachers' servers only: the profile grading runs in
GPTLIB_CLASSROOM_CELL_TIMEOUT  passed to the teachers' servers: nbgrader's cell timeout (s)
"""

import json
import os
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub defines it)

HERE = Path(__file__).resolve().parent
env = os.environ.get

SPAWNER = env("GPTLIB_CLASSROOM_SPAWNER", "simple")
if SPAWNER not in ("simple", "system"):
    raise ValueError(f"GPTLIB_CLASSROOM_SPAWNER is {SPAWNER!r}: choose simple or system")
TEACHERS = {name.strip() for name in env("GPTLIB_CLASSROOM_TEACHERS", "teacher").split(",") if name.strip()}
STATE = Path(env("GPTLIB_CLASSROOM_STATE", "/srv/jupyterhub"))
HOMES = Path(env("GPTLIB_CLASSROOM_HOMES", "/srv/classroom/home"))
EXCHANGE = env("GPTLIB_CLASSROOM_EXCHANGE", "/srv/nbgrader/exchange")
STATE.mkdir(parents=True, exist_ok=True, mode=0o700)

# --- addresses: the proxy is public, the hub and the proxy's API stay on the loopback -------
c.JupyterHub.ip = env("GPTLIB_CLASSROOM_IP", "127.0.0.1")
c.JupyterHub.port = int(env("GPTLIB_CLASSROOM_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("GPTLIB_CLASSROOM_HUB_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env('GPTLIB_CLASSROOM_PROXY_API_PORT', '8001')}"
# configurable-http-proxy: the npm package or its Python port (PyPI), the same command and API.
# A grading request (autograde) runs for minutes; the proxy's default timeout would cut it.
c.ConfigurableHTTPProxy.command = ["configurable-http-proxy", "--proxy-timeout", str(3600 * 1000)]
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # the hub stops every server when it stops

# --- who logs in, and where their server runs --------------------------------------------
if SPAWNER == "simple":
    c.JupyterHub.authenticator_class = "dummy"
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(HOMES / "{username}")
    if os.geteuid() == 0:  # every server runs as the hub's own user, here root
        c.Spawner.args = ["--ServerApp.allow_root=True"]
else:
    c.JupyterHub.authenticator_class = "pam"
    c.JupyterHub.spawner_class = "localprocess"
    # make the accounts yourself (useradd: a private home each); this folder and the venv
    # must be readable by them (not under /root, say)
c.Authenticator.admin_users = set(TEACHERS)

c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# nbgrader_config.py is read from this folder; roles/<role>/ switches the formgrader on or off.
c.Spawner.environment = {"NBGRADER_EXCHANGE_ROOT": EXCHANGE}
if env("GPTLIB_CLASSROOM_SHARED_STORE"):
    c.Spawner.environment["GPTLIB_SHARED_STORE"] = env("GPTLIB_CLASSROOM_SHARED_STORE")

SLOTS = int(env("GPTLIB_CLASSROOM_RUN_SLOTS", str(len(os.sched_getaffinity(0)))))
if SLOTS > 0:  # lab runs take turns, SLOTS at a time, each on its share of the cores
    from gptlib.support.run_slots import make_slots

    slots_dir = Path(env("GPTLIB_CLASSROOM_RUN_SLOTS_DIR", str(STATE.parent / "gptlib-run-slots")))
    make_slots(slots_dir, SLOTS)
    c.Spawner.environment["GPTLIB_RUN_SLOTS"] = str(slots_dir)
    c.Spawner.environment["OMP_NUM_THREADS"] = env("OMP_NUM_THREADS") or str(
        max(1, len(os.sched_getaffinity(0)) // SLOTS))

token = env("GPTLIB_CLASSROOM_API_TOKEN")
if token:
    c.JupyterHub.services = [{"name": "classroom-admin", "api_token": token}]
    c.JupyterHub.load_roles = [{
        "name": "classroom-admin",
        "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users"],
        "services": ["classroom-admin"],
    }]


def pre_spawn_hook(spawner):
    """A teacher's server gets the formgrader and the grading profile; a student's does not.

    With the ``simple`` spawner the home is made here, private (0700) as ``useradd`` makes one.
    """
    teacher = spawner.user.name in TEACHERS
    role = HERE / "roles" / ("teacher" if teacher else "student")
    spawner.environment = {**spawner.environment,
                           "JUPYTER_CONFIG_PATH": os.pathsep.join([str(role), str(HERE)])}
    for name in ("GPTLIB_GRADING_PROFILE", "GPTLIB_CLASSROOM_CELL_TIMEOUT"):
        if teacher and env(name):
            spawner.environment[name] = env(name)
    if SPAWNER == "simple":
        home = Path(spawner.home_dir)
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    spawner.log.info("classroom: %s starts as a %s (%s)", spawner.user.name,
                     "teacher" if teacher else "student", json.dumps(spawner.environment["JUPYTER_CONFIG_PATH"]))


c.Spawner.pre_spawn_hook = pre_spawn_hook
