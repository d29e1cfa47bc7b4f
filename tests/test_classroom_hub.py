"""The class flow on a real JupyterHub, started from classroom/'s own files.

The hub runs ``classroom/jupyterhub_config.py`` (the ``simple`` spawner, the dummy
authenticator) with configurable-http-proxy's Python port, on 127.0.0.1 and free ports, with
its database, cookie secret, the users' homes and nbgrader's exchange in a temporary folder.
A teacher and three students each get their own single-user server, started by the hub, and
act only through it, over HTTP through the proxy, with their own API token:

* teacher: uploads the source of A05 (contents API), generate_assignment, release_assignment
  (the formgrader's REST API, what its buttons call);
* students: fetch_assignment (the assignment list's REST API, what the Assignments tab calls),
  work on the notebook (contents API, what saving in JupyterLab does: one honest, one partial,
  one untouched), submit;
* teacher: collect, autograde each student, generate_feedback, release_feedback;
* students: fetch_feedback, and each reads their own.

By default all the servers run as one unix user (the one running the test): the venv's
interpreter may not be usable by other accounts (here it lives under /root, mode 0700). What
unix permissions add between distinct accounts is then checked separately, by a process under
another uid reading the exchange (root only; skipped otherwise). With
GPTLIB_CLASSROOM_ACCOUNTS=1 (root, an interpreter other accounts can run) the test makes a unix
account for each user, starts the hub with the ``system`` spawner, so that every server and
kernel runs as its own user as in a real class, and deletes the accounts afterwards.
Everything runs under the smoke grading profile. GPTLIB_CLASSROOM_KEEP=1 keeps the temporary
folder (the hub's log, the homes, the exchange) for a look after a failure.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("nbgrader")
requests = pytest.importorskip("requests")
nbformat = pytest.importorskip("nbformat")
psutil = pytest.importorskip("psutil")
yaml = pytest.importorskip("yaml")

from gptlib.assignments.grade import is_check_cell  # noqa: E402
from gptlib.assignments.release import build_student_versions, solution_lines  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLASSROOM = ROOT / "classroom"
SOURCE = ROOT / "notebooks" / "assignments"
BIN = Path(sys.executable).parent
COURSE, ASSIGNMENT, NOTEBOOK = "ch6", "a05", "A05_your_own_data"
TEACHER = "teacher"
# student -> the solution cells (grade_id) they fill in: all, two, none
WORK = {"ada": "all", "ben": ("a05_label_map", "a05_confusion"), "cyd": ()}
STUDENTS = list(WORK)
TIMEOUT = 600  # seconds for one request (autograde runs a whole notebook)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hub:
    """The hub's REST API (as the classroom-admin service) and each user's server through the proxy."""

    def __init__(self, url: str, admin_token: str, log: Path):
        self.url, self.admin_token, self.log, self.tokens = url, admin_token, log, {}

    def log_tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:]

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api/{path}", timeout=60,
                                headers={"Authorization": f"token {self.admin_token}"}, **kw)

    def as_user(self, name: str, method: str, path: str, token_of: str | None = None, **kw) -> requests.Response:
        """A request to ``name``'s server, with the token of ``token_of`` (by default ``name``)."""
        token = self.tokens[token_of or name]
        return requests.request(method, f"{self.url}/user/{name}/{path}", timeout=TIMEOUT,
                                headers={"Authorization": f"token {token}"}, **kw)

    def ok(self, name: str, method: str, path: str, **kw):
        r = self.as_user(name, method, path, **kw)
        assert r.status_code < 300, f"{name}: {method} {path}: {r.status_code} {r.text[:2000]}\n{self.log_tail()}"
        return r.json() if r.content else None

    def nbgrader(self, name: str, path: str, **kw) -> dict:
        """A formgrader action of the teacher: nbgrader's answer must say success."""
        out = self.ok(name, "POST", f"formgrader/api/{path}", **kw)
        assert out.get("success"), f"{path}: {json.dumps(out)[:4000]}"
        return out

    def student(self, name: str, action: str) -> object:
        """fetch / submit / fetch_feedback, as the Assignments tab sends it."""
        out = self.ok(name, "POST", f"assignments/{action}",
                      json={"course_id": COURSE, "assignment_id": ASSIGNMENT})
        assert not (isinstance(out, dict) and out.get("success") is False), f"{name} {action}: {out}"
        return out

    def put(self, name: str, path: str, model: dict) -> None:
        self.ok(name, "PUT", f"api/contents/{path}", json=model)

    def get(self, name: str, path: str, **params) -> dict:
        return self.ok(name, "GET", f"api/contents/{path}", params=params)


FAMILY: set = set()  # every process the hub started, seen so far (the proxy, servers, kernels)


def remember(process: subprocess.Popen) -> None:
    try:
        FAMILY.update(psutil.Process(process.pid).children(recursive=True))
    except psutil.NoSuchProcess:
        pass


def stop(process: subprocess.Popen, grace: float = 30) -> None:
    """Stop the hub (it stops the proxy and the servers), then end whatever of its own is left,
    also when the hub died before: its children were remembered while it ran."""
    remember(process)
    family = list(FAMILY)
    FAMILY.clear()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    for child in family:  # psutil checks each one is still the same process before signalling
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def fill(nb, solved, which) -> object:
    """The released notebook with the solution cells ``which`` ('all' or grade_ids) written in."""
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in solved.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and (which == "all" or gid in which):
            cell.source = answers[gid]
    return nb


def check_points() -> dict[str, float]:
    nb = nbformat.read(SOURCE / f"{NOTEBOOK}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"])
            for c in nb.cells if is_check_cell(c)}


@pytest.fixture(scope="module")
def classroom():
    """The whole class flow on a hub started from classroom/jupyterhub_config.py."""
    pytest.importorskip("jupyterhub", reason="jupyterhub is not installed (pip install jupyterhub)")
    if not shutil.which("configurable-http-proxy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"):
        pytest.skip("configurable-http-proxy is not installed in this environment "
                    "(pip install configurable-http-proxy, or npm install -g configurable-http-proxy)")
    # Not pytest's tmp_path: its parents are 0700, so another uid could reach nothing in it
    # and the permission checks below would pass for the wrong reason.
    base = Path(tempfile.mkdtemp(prefix="gptlib-classroom-"))
    base.chmod(0o755)
    state, homes, exchange = base / "hub", base / "home", base / "exchange"
    homes.mkdir(mode=0o755)
    exchange.mkdir()
    exchange.chmod(0o777)
    port = free_port()
    ports = {"GPTLIB_CLASSROOM_PORT": port, "GPTLIB_CLASSROOM_HUB_PORT": free_port(),
             "GPTLIB_CLASSROOM_PROXY_API_PORT": free_port()}
    token = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPTLIB_", "JUPYTER", "NBGRADER"))}
    env.update({k: str(v) for k, v in ports.items()})
    accounts = make_accounts(homes) if os.environ.get("GPTLIB_CLASSROOM_ACCOUNTS") == "1" else []
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               GPTLIB_CLASSROOM_SPAWNER="system" if accounts else "simple",
               GPTLIB_CLASSROOM_IP="127.0.0.1", GPTLIB_CLASSROOM_STATE=str(state),
               GPTLIB_CLASSROOM_HOMES=str(homes), GPTLIB_CLASSROOM_EXCHANGE=str(exchange),
               GPTLIB_CLASSROOM_TEACHERS=TEACHER, GPTLIB_CLASSROOM_API_TOKEN=token,
               GPTLIB_GRADING_PROFILE="smoke", GPTLIB_CLASSROOM_CELL_TIMEOUT="300")
    log = base / "hub.log"
    times: dict[str, float] = {}
    start = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(CLASSROOM / "jupyterhub_config.py")],
                                   cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    hub = Hub(f"http://127.0.0.1:{port}", token, log)
    try:
        yield run_the_class(hub, process, base, exchange, homes, times, start, accounts)
    finally:
        stop(process)
        for name in accounts:
            subprocess.run(["userdel", name], capture_output=True)
        if not os.environ.get("GPTLIB_CLASSROOM_KEEP"):
            shutil.rmtree(base, ignore_errors=True)


def make_accounts(homes: Path) -> list[str]:
    """A unix account for the teacher and each student, home in ``homes`` (root only)."""
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("useradd")):
        pytest.skip("GPTLIB_CLASSROOM_ACCOUNTS=1 needs root and useradd")
    made = []
    try:
        for name in (TEACHER, *STUDENTS):
            r = subprocess.run(["useradd", "--home-dir", str(homes / name), "--create-home", "--shell", "/bin/sh",
                                name], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot make the account {name}: {r.stderr.strip()}")
            made.append(name)
            (homes / name).chmod(0o700)  # as the teacher's guide says: useradd may make it 0755
        probe = subprocess.run(["setpriv", f"--reuid={STUDENTS[0]}", f"--regid={STUDENTS[0]}", "--init-groups", "--",
                                sys.executable, "-c", "import gptlib, jupyterhub, nbgrader"],
                               capture_output=True, text=True, timeout=120)
        if probe.returncode != 0:
            pytest.skip(f"other accounts cannot run this interpreter ({sys.executable}): {probe.stderr.strip()[-300:]}")
    except BaseException:
        for name in made:
            subprocess.run(["userdel", name], capture_output=True)
        raise
    return made


def wait(what: str, hub: Hub, process: subprocess.Popen, done, limit: float = 240) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        remember(process)
        assert process.poll() is None, f"the hub stopped ({process.returncode}):\n{hub.log_tail()}"
        try:
            if done():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {limit} s\n{hub.log_tail()}")


def run_the_class(hub: Hub, process, base: Path, exchange: Path, homes: Path, times: dict, start: float,
                  accounts: list[str]) -> dict:
    def lap(name: str) -> None:
        times[name] = round(time.monotonic() - start - sum(times.values()), 1)

    wait("the hub's API", hub, process, lambda: hub.api("GET", "").status_code == 200)
    lap("hub up")
    users = [TEACHER, *STUDENTS]
    r = hub.api("POST", "users", json={"usernames": users})
    assert r.status_code == 201, r.text
    for name in users:
        r = hub.api("POST", f"users/{name}/server")
        assert r.status_code in (201, 202), f"{name}: {r.status_code} {r.text}"
        r = hub.api("POST", f"users/{name}/tokens", json={"note": "classroom test", "expires_in": 3600})
        assert r.status_code == 201, r.text
        hub.tokens[name] = r.json()["token"]

    def ready(name):
        return hub.api("GET", f"users/{name}").json()["servers"].get("", {}).get("ready")

    for name in users:
        wait(f"{name}'s server", hub, process, lambda name=name: ready(name))
    lap("servers up")

    # --- the teacher: the source into ~/ch6/source/a05, generate, release -----------------
    built = base / "built"
    build_student_versions(SOURCE, built, solutions=True)
    solved = nbformat.read(built / f"{NOTEBOOK}.ipynb", as_version=4)
    src = f"{COURSE}/source/{ASSIGNMENT}"
    for folder in (COURSE, f"{COURSE}/source", src, f"{src}/data"):
        hub.put(TEACHER, folder, {"type": "directory"})
    hub.put(TEACHER, f"{src}/{NOTEBOOK}.ipynb", {"type": "notebook", "format": "json", "content": solved})
    for csv in (built / "data").iterdir():
        hub.put(TEACHER, f"{src}/data/{csv.name}", {"type": "file", "format": "text", "content": csv.read_text()})
    log = {"generate": hub.nbgrader(TEACHER, f"assignment/{ASSIGNMENT}/assign"),
           "release": hub.nbgrader(TEACHER, f"assignment/{ASSIGNMENT}/release")}
    lap("generate, release")

    # --- the students: fetch, work, submit ----------------------------------------------------
    fetched = {}
    for name in STUDENTS:
        hub.student(name, "fetch")
        path = f"{ASSIGNMENT}/{NOTEBOOK}.ipynb"
        nb = nbformat.from_dict(hub.get(name, path, content=1)["content"])
        fetched[name] = nbformat.writes(nb)
        hub.put(name, path, {"type": "notebook", "format": "json", "content": fill(nb, solved, WORK[name])})
        hub.student(name, "submit")
    listed = {name: hub.ok(name, "GET", "assignments", params={"course_id": COURSE}) for name in STUDENTS}
    lap("fetch, work, submit")

    # --- the teacher: collect, autograde, feedback --------------------------------------------
    log["collect"] = hub.nbgrader(TEACHER, f"assignment/{ASSIGNMENT}/collect")
    # one request per student, as the formgrader's buttons send them (the server runs them in
    # turn: each runs the student's notebook in a fresh kernel)
    log["autograde"] = {}
    for name in STUDENTS:
        log["autograde"][name] = hub.nbgrader(TEACHER, f"submission/{ASSIGNMENT}/{name}/autograde")
        remember(process)
    lap("collect, autograde")
    log["feedback"] = hub.nbgrader(TEACHER, f"assignment/{ASSIGNMENT}/generate_feedback")
    log["release_feedback"] = hub.nbgrader(TEACHER, f"assignment/{ASSIGNMENT}/release_feedback")
    submissions = hub.ok(TEACHER, "GET", f"formgrader/api/submissions/{ASSIGNMENT}")
    lap("feedback")

    # --- the students: fetch their feedback -----------------------------------------------------
    feedback = {}
    for name in STUDENTS:
        hub.student(name, "fetch_feedback")
        pages = []
        for stamp in hub.get(name, f"{ASSIGNMENT}/feedback")["content"]:
            for page in hub.get(name, stamp["path"])["content"]:
                pages.append((page["name"], hub.get(name, page["path"], type="file", format="text")["content"]))
        feedback[name] = pages
    lap("fetch_feedback")
    return {"hub": hub, "base": base, "exchange": exchange / COURSE, "homes": homes, "log": log,
            "accounts": accounts,
            "solved": solved, "fetched": fetched, "listed": listed, "times": times,
            "scores": {s["student"]: s for s in submissions}, "feedback": feedback}


# --- the points -------------------------------------------------------------------------------


def test_points_per_student(classroom):
    points = check_points()
    full = sum(points.values())
    # honest: every check; partial: the label map (1) and the confusion matrix (2), not the run
    # nor the classifier that needs it; empty: nothing. The written answer is graded by hand.
    expected = {"ada": full, "ben": points["a05_label_map_check"] + points["a05_confusion_check"], "cyd": 0.0}
    got = {name: classroom["scores"][name]["score"] for name in STUDENTS}
    assert got == expected == {"ada": 7.0, "ben": 3.0, "cyd": 0.0}, (got, expected)
    assert all(classroom["scores"][name]["max_score"] == full + 6 for name in STUDENTS)
    print("\nclassroom timings (s):", classroom["times"])


def page_text(page: str) -> str:
    page = re.sub(r"<(style|script)\b.*?</\1>", "", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_each_student_fetches_only_their_own_feedback(classroom):
    homes = classroom["homes"]
    for name in STUDENTS:
        pages = classroom["feedback"][name]
        assert [page for page, _ in pages] == [f"{NOTEBOOK}.html"], pages
        score, possible = classroom["scores"][name]["score"], classroom["scores"][name]["max_score"]
        assert f"{NOTEBOOK} (Score: {score:.1f} / {possible:.1f})" in page_text(pages[0][1]), name
        # nothing of another student's in this student's home: one feedback page, one submission
        pages_at_home = [p for p in (homes / name).rglob("*.html") if "runtime" not in p.parts]  # not the server's own
        assert [p.name for p in pages_at_home] == [f"{NOTEBOOK}.html"], name
        cache = homes / name / ".local" / "share" / "jupyter" / "nbgrader_cache" / COURSE
        assert [p.name.split("+")[0] for p in cache.iterdir()] == [name]
    assert len({page for name in STUDENTS for _, page in classroom["feedback"][name]}) == len(STUDENTS)
    # the exchange names feedback by a hash of each submission's secret, never by the student
    released = sorted(p.name for p in (classroom["exchange"] / "feedback").iterdir())
    assert len(released) == len(STUDENTS) and all(re.fullmatch(r"[0-9a-f]{32}\.html", n) for n in released)


def test_the_release_holds_no_teachers_source(classroom):
    outbound = classroom["exchange"] / "outbound" / ASSIGNMENT
    assert sorted(p.relative_to(outbound).as_posix() for p in outbound.rglob("*") if p.is_file()) == \
        [f"{NOTEBOOK}.ipynb", "data/support_messages.csv"]
    answers = [line.strip() for cell in classroom["solved"].cells if cell.cell_type == "code"
               for line in solution_lines(cell.source) if len(line.strip()) > 12]
    assert len(answers) >= 5
    for name, text in [("release", (outbound / f"{NOTEBOOK}.ipynb").read_text()), *classroom["fetched"].items()]:
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name
        code = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        assert not [line for line in answers if line in code], name


def test_students_cannot_reach_each_other_or_the_formgrader_through_the_hub(classroom):
    hub = classroom["hub"]
    for name in STUDENTS:
        for other in [TEACHER, *STUDENTS]:
            if other != name:  # the hub refuses a student's token at anyone else's server
                r = hub.as_user(other, "GET", f"api/contents/{ASSIGNMENT}", token_of=name)
                assert r.status_code == 403, (name, other, r.status_code)
        r = hub.as_user(TEACHER, "GET", f"formgrader/api/submissions/{ASSIGNMENT}", token_of=name)
        assert r.status_code == 403, (name, r.status_code)
        assert hub.as_user(name, "GET", "formgrader/api/status").status_code == 404, "no formgrader for students"
        # the Assignments tab lists this student's own submission, nobody else's
        listed = classroom["listed"][name]
        submitted = [a for a in listed["value"] if a["status"] == "submitted"]
        assert [(a["student_id"], len(a["submissions"])) for a in submitted] == [(name, 1)], listed
    assert hub.as_user(TEACHER, "GET", "formgrader/api/status").status_code == 200


def test_the_exchange_keys_submissions_by_student_and_a_random_name(classroom):
    ex = classroom["exchange"]
    assert stat.S_IMODE((ex / "inbound").stat().st_mode) & 0o777 == 0o733, "others may drop in, never list"
    assert stat.S_IMODE((ex / "feedback").stat().st_mode) & 0o777 == 0o711, "others may open a known name, never list"
    names = sorted(p.name for p in (ex / "inbound").iterdir())
    assert len(names) == len(STUDENTS)
    for name, student in zip(names, sorted(STUDENTS)):
        who, assignment, _stamp, random = name.split("+")
        assert (who, assignment) == (student, ASSIGNMENT) and len(random) >= 12, name
    for student in STUDENTS:  # the teacher's copies, by student
        assert (classroom["homes"] / TEACHER / COURSE / "submitted" / student / ASSIGNMENT / f"{NOTEBOOK}.ipynb").is_file()


def as_other_uid(*args: str) -> subprocess.CompletedProcess:
    """``args`` run as uid/gid 65534 (nobody): an account that owns nothing here."""
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *args],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("setpriv")),
                    reason="needs root (and setpriv) to act as a second unix account; the servers of "
                           "this test share one uid, and only distinct accounts make permissions matter")
def test_another_unix_account_cannot_list_submissions_or_read_the_source(classroom):
    """What nbgrader's exchange gives between distinct accounts, checked with a second uid."""
    ex, homes = classroom["exchange"], classroom["homes"]
    assert as_other_uid("ls", str(ex / "outbound" / ASSIGNMENT)).returncode == 0, "the release is readable"
    assert as_other_uid("test", "-w", str(ex / "inbound")).returncode == 0, "a submission can be dropped in"
    for path in (ex / "inbound", ex / "feedback", homes / TEACHER, *(homes / s for s in STUDENTS)):
        r = as_other_uid("ls", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r.stdout, r.stderr)
    source = homes / TEACHER / COURSE / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    assert source.is_file()
    r = as_other_uid("cat", str(source))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr


# --- the files for Docker and Kubernetes agree with the hub's -----------------------------------


def test_with_real_accounts_each_server_works_as_its_own_user(classroom):
    if not classroom["accounts"]:
        pytest.skip("one unix user for every server (GPTLIB_CLASSROOM_ACCOUNTS=1 makes an account each)")
    import pwd

    for name in STUDENTS:  # what each student's server wrote belongs to that student's account
        fetched = classroom["homes"] / name / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
        assert fetched.stat().st_uid == pwd.getpwnam(name).pw_uid, name
    source = classroom["homes"] / TEACHER / COURSE / "source" / ASSIGNMENT / f"{NOTEBOOK}.ipynb"
    assert source.stat().st_uid == pwd.getpwnam(TEACHER).pw_uid


def test_the_hub_sets_up_the_run_queue_readable_by_every_student(classroom):
    slots = sorted((classroom["base"] / "gptlib-run-slots").glob("slot-*"))
    assert len(slots) == len(os.sched_getaffinity(0))  # one lab run per core at a time, by default
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in slots)


def test_the_image_and_the_kubernetes_values_use_the_same_files():
    docker = (CLASSROOM / "Dockerfile").read_text()
    assert "COPY classroom/nbgrader_config.py /etc/gptlib-classroom/nbgrader_config.py" in docker
    assert "COPY classroom/roles /etc/gptlib-classroom/roles" in docker
    assert "ENV NBGRADER_EXCHANGE_ROOT=/srv/nbgrader/exchange" in docker
    pins = re.findall(r'"(torch|nbgrader|jupyterhub)==([^"]+)"', docker)
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert {name for name, _ in pins} == {"torch", "nbgrader", "jupyterhub"}
    assert all(f"{name}=={version}" in setup for name, version in pins if name != "jupyterhub")
    assert "NBGRADER_EXCHANGE_ROOT" in (CLASSROOM / "nbgrader_config.py").read_text()

    values = yaml.safe_load((CLASSROOM / "z2jh-values.yaml").read_text())
    single = values["singleuser"]
    mount = single["storage"]["extraVolumeMounts"][0]["mountPath"]
    assert single["extraEnv"]["NBGRADER_EXCHANGE_ROOT"] == mount == "/srv/nbgrader/exchange"
    hook = values["hub"]["extraConfig"]["gptlib-classroom"]
    compile(hook, "z2jh-values.yaml", "exec")
    for role in ("teacher", "student"):
        assert (CLASSROOM / "roles" / role / "jupyter_server_config.json").is_file()
    assert "/etc/gptlib-classroom/roles/{role}:/etc/gptlib-classroom" in hook
    assert set(values["hub"]["config"]["Authenticator"]["admin_users"]) == {TEACHER}
