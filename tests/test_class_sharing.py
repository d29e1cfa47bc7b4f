"""A class on one machine shares what is the same for everyone: base weights mapped from one
file (gptlib.speed.mapped), and a store of frozen activations the teacher warms once into a
read-only folder (``cache warm --into``, ``GPTLIB_SHARED_STORE``) that students' kernels read
and never write. What is damaged, missing or not theirs to write is skipped with one line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptlib.model import GPTModel, get_config
from gptlib.speed import mapped
from gptlib.speed.shared_base import forget_base, shared_base
from gptlib.speed.store import ActivationSet, ActivationStore, default_store

TINY = "gpt2-tiny (test)"
SMALL_TSV = Path(__file__).resolve().parent / "fixtures" / "sms_small.tsv"


def mapped_files() -> set[str]:
    return {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if line.endswith(".pt")}


@pytest.fixture
def fresh(gptlib_home, monkeypatch):
    for name in ("GPTLIB_SHARED_STORE", "GPTLIB_BASES_DIR", "GPTLIB_STORE_DIR", mapped.ENV):
        monkeypatch.delenv(name, raising=False)
    forget_base()
    yield gptlib_home
    forget_base()


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_a_random_base_is_the_books_seeded_model_mapped_from_one_file(fresh):
    first = shared_base(TINY, "random", seed=7)
    files = list((fresh / "bases").glob("*.pt"))
    assert len(files) == 1
    forget_base()
    second = shared_base(TINY, "random", seed=7)
    torch.manual_seed(7)
    book = GPTModel(get_config(TINY, drop_rate=0.0))
    for a, b, c in zip(book.state_dict().values(), first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert str(files[0]) in mapped_files()  # pages of the file, shared with every process that maps it
    forget_base()
    shared_base(TINY, "random", seed=8)  # another seed, another file
    assert len(list((fresh / "bases").glob("*.pt"))) == 2


def test_mapping_off_builds_a_private_copy_and_writes_nothing(fresh, monkeypatch):
    monkeypatch.setenv(mapped.ENV, "0")
    model = shared_base(TINY, "random", seed=7)
    assert not (fresh / "bases").exists()
    torch.manual_seed(7)
    assert torch.equal(next(model.parameters()), next(GPTModel(get_config(TINY, drop_rate=0.0)).parameters()))


def test_a_damaged_base_file_is_replaced_not_trusted(fresh):
    shared_base(TINY, "random", seed=7)
    path = next((fresh / "bases").glob("*.pt"))
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    forget_base()
    model = shared_base(TINY, "random", seed=7)
    torch.manual_seed(7)
    assert torch.equal(next(model.parameters()), next(GPTModel(get_config(TINY, drop_rate=0.0)).parameters()))


def _entry(store_dir: Path) -> tuple[str, ActivationSet]:
    found = ActivationSet([(1, 2, 3), (4, 5)], torch.arange(5 * 4, dtype=torch.float32).reshape(5, 4))
    key = hashlib.sha256(b"test entry").hexdigest()[:32]
    ActivationStore(store_dir, 2**30, 2**30, say=lambda m: None).put(key, found)
    return key, found


def _snapshot(folder: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_a_student_reads_the_shared_store_after_their_own_and_never_writes_it(tmp_path):
    shared = tmp_path / "class-store"
    key, found = _entry(shared)
    before = _snapshot(shared)
    said = []
    store = ActivationStore(tmp_path / "student" / "activations", 2**30, 2**30, say=said.append, shared=shared)
    got = store.get(key)
    assert got is not None and got[1] == "shared" and torch.equal(got[0].slab, found.slab)
    assert store.stats["shared_hits"] == 1 and not said
    store.put(hashlib.sha256(b"own").hexdigest()[:32], found)  # the student's own entries: their own folder
    assert _snapshot(shared) == before  # not written, touched or deleted
    assert len(list((tmp_path / "student" / "activations").glob("*.pt"))) == 1


def test_a_damaged_shared_entry_is_skipped_with_one_line_and_left_as_it_is(tmp_path):
    shared = tmp_path / "class-store"
    key, _ = _entry(shared)
    path = shared / f"{key}.pt"
    path.write_bytes(path.read_bytes()[:-50])
    before = _snapshot(shared)
    said = []
    store = ActivationStore(tmp_path / "own", 2**30, 2**30, say=said.append, shared=shared)
    assert store.get(key) is None and store.get(key) is None
    assert len(said) == 1 and "skipped" in said[0] and "left as it is" in said[0]
    assert _snapshot(shared) == before


def test_a_missing_shared_store_is_skipped_with_one_line(tmp_path, monkeypatch, gptlib_home):
    said = []
    store = ActivationStore(tmp_path / "own", 2**30, 2**30, say=said.append, shared=tmp_path / "nowhere")
    assert store.get("0" * 32) is None and store.get("1" * 32) is None
    assert len(said) == 1 and "GPTLIB_SHARED_STORE" in said[0]
    monkeypatch.setenv("GPTLIB_SHARED_STORE", str(tmp_path / "nowhere"))
    assert default_store().shared == tmp_path / "nowhere"
    monkeypatch.setenv("GPTLIB_SHARED_STORE", "")
    assert default_store().shared is None


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gptlib", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})


RUN = ["--model-size", TINY, "--weights", "random", "--speed", "fast", "--data", str(SMALL_TSV)]


@pytest.mark.slow
def test_the_teachers_warm_up_serves_a_students_first_run_from_the_shared_store(tmp_path):
    """Two teachers' warm-ups at once leave one complete entry; a student's first run takes its
    frozen activations (and its base weights) from the shared folder, and changes nothing there."""
    shared = tmp_path / "class"
    teachers = [subprocess.Popen([sys.executable, "-m", "gptlib", "cache", "warm", "--into", str(shared), *RUN],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 env={**os.environ, "OMP_NUM_THREADS": "1", "GPTLIB_HOME": str(tmp_path / f"t{i}")})
                for i in range(2)]
    outs = [t.communicate(timeout=600)[0] for t in teachers]
    assert all(t.returncode == 0 for t in teachers), outs
    entries = list(shared.glob("*.pt"))
    assert len(entries) == 1 and len(list((shared / "bases").glob("*.pt"))) == 1
    before = _snapshot(shared)
    student = _cli("finetune", *RUN, "--epochs", "1", "--no-progress", "--output", str(tmp_path / "run"),
                   env={"GPTLIB_HOME": str(tmp_path / "student"), "GPTLIB_SHARED_STORE": str(shared)})
    assert student.returncode == 0, student.stdout + student.stderr
    assert "taken from the class's shared store" in student.stdout
    assert _snapshot(shared) == before
    assert not (tmp_path / "student" / "bases").exists()  # the class's base file was mapped instead


def test_a_grading_process_never_reads_a_shared_store(tmp_path):
    """A grader's kernel was started with GPTLIB_GRADING_PROFILE: a shared store named in its
    environment (which a student may have pointed at a folder they write) is not read, and
    unsetting the profile from inside the kernel does not change that."""
    code = ("import os; from gptlib.speed.store import shared_folder; from gptlib.speed import mapped; "
            "os.environ.pop('GPTLIB_GRADING_PROFILE'); print(shared_folder(), mapped.shared_copy('x.pt'))")
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "x.pt").write_bytes(b"planted")
    env = {**os.environ, "GPTLIB_SHARED_STORE": str(tmp_path)}
    graded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**env, "GPTLIB_GRADING_PROFILE": "smoke"})
    assert graded.stdout.split() == ["None", "None"], graded.stderr
    student = subprocess.run([sys.executable, "-c", code.replace("os.environ.pop('GPTLIB_GRADING_PROFILE'); ", "")],
                             capture_output=True, text=True, timeout=120, env=env)
    assert student.stdout.split() == [str(tmp_path), str(tmp_path / "bases" / "x.pt")], student.stderr


@pytest.mark.slow
def test_a_students_run_killed_midway_leaves_the_shared_store_and_their_own_usable(tmp_path):
    """A kernel killed mid-run (SIGKILL, nothing cleaned up): the class's shared folder is as
    it was, the student's own store and run folder hold no half-written file under a real
    name, and the student's next run works."""
    import signal

    shared = tmp_path / "class"
    warm = _cli("cache", "warm", "--into", str(shared), *RUN, env={"GPTLIB_HOME": str(tmp_path / "teacher")})
    assert warm.returncode == 0, warm.stdout + warm.stderr
    before = _snapshot(shared)
    home, out = tmp_path / "student", tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPTLIB_HOME": str(home), "GPTLIB_SHARED_STORE": str(shared)}
    # another padded length: a miss in the shared store, so the student computes and writes their own entry
    args = [sys.executable, "-m", "gptlib", "finetune", *RUN, "--max-length", "48", "--epochs", "5000",
            "--no-progress", "--output", str(out)]
    student = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in student.stdout:  # the store's entry is written before training starts
        seen.append(line)
        if line.startswith("Ep 1"):
            break
    assert student.poll() is None, "the run ended before it could be killed: " + "".join(seen)
    student.send_signal(signal.SIGKILL)
    student.wait(timeout=60)
    assert _snapshot(shared) == before, "the shared store is as the teacher left it"
    for folder in (home, out):
        named = [p for p in folder.rglob("*") if p.is_file() and p.name.endswith(".part") and not p.name.startswith(".")]
        assert not named, f"half-written files under a real name: {named}"
    again = _cli("finetune", *RUN, "--max-length", "48", "--epochs", "1", "--no-progress", "--output", str(out),
                 env={"GPTLIB_HOME": str(home), "GPTLIB_SHARED_STORE": str(shared)})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Test accuracy" in again.stdout
    assert _snapshot(shared) == before


def test_a_skeleton_built_on_meta_runs_no_init_and_imports_no_compiler():
    """Mapping a base builds its skeleton on the meta device; its random fills are skipped, so
    a process that only loads weights never imports torch._dynamo (1 s and 70 MB)."""
    code = ("import sys, torch\n"
            "from gptlib.support.meta import on_meta\n"
            "from gptlib.model import GPTModel, get_config\n"
            "with on_meta():\n"
            "    m = GPTModel(get_config('gpt2-small (124M)'))\n"
            "w = m.tok_emb.weight\n"
            "print(w.is_meta, tuple(w.shape), w.requires_grad, 'torch._dynamo' in sys.modules)\n"
            "print(torch.nn.Linear(2, 2).weight.abs().sum().item() > 0)\n")  # fills elsewhere still run
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "True (50257, 768) True False"
    assert out[1] == "True"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_the_labs_warm_up_loads_the_base_before_the_first_click_and_never_downloads(fresh):
    from gptlib.finetune import FinetuneConfig
    from gptlib.lab.engine import RunEngine
    from gptlib.speed.shared_base import base_is_loaded

    cfg = FinetuneConfig(model_size="gpt2-tiny (test)", weights="random", seed=5, figures=None)
    RunEngine(cfg).warm_up().join(timeout=60)
    assert base_is_loaded("gpt2-tiny (test)", "random", seed=5)
    assert mapped_files(), "the warmed base is mapped from its file"
    forget_base()
    pretrained = FinetuneConfig(model_size="gpt2-tiny (test)", weights="pretrained", figures=None)
    RunEngine(pretrained).warm_up().join(timeout=60)  # no weights on disk: nothing is fetched
    assert not base_is_loaded("gpt2-tiny (test)", "pretrained")
