"""Lab runs taking turns on a shared machine (gptlib.support.run_slots): K at a time over every
kernel, a slot let go when its run ends or its kernel dies, Stop while waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from gptlib.support.run_slots import ENV, make_slots, take_slot

pytest.importorskip("fcntl")


@pytest.fixture
def slots(tmp_path, monkeypatch):
    files = make_slots(tmp_path / "slots", 2)
    monkeypatch.setenv(ENV, str(tmp_path / "slots"))
    return files


def test_no_queue_set_means_every_run_starts_at_once(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with take_slot() as slot:
        assert slot.fd is None


def test_two_slots_let_two_runs_in_and_the_third_waits_its_turn(slots):
    first, second = take_slot(), take_slot()
    assert {first.path, second.path} == set(slots)
    heard, got = [], []
    waiter = threading.Thread(target=lambda: got.append(take_slot(on_wait=heard.append, poll=0.02)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive() and heard == [2]  # told once that both slots are busy
    first.release()
    waiter.join(5)
    assert got and got[0].path == first.path
    second.release()
    got[0].release()


def test_waiting_runs_are_served_first_come_first_served(slots):
    held = [take_slot(), take_slot()]
    got: dict[str, object] = {}

    def wait_in_line(name: str) -> None:
        got[name] = take_slot(poll=0.02)

    first = threading.Thread(target=wait_in_line, args=("first",))
    first.start()
    time.sleep(0.2)
    second = threading.Thread(target=wait_in_line, args=("second",))
    second.start()
    time.sleep(0.2)
    held.pop().release()  # a run ends, and its kernel asks again at once: it is third in line
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    assert take_slot(stop=stop, poll=0.02) is None
    first.join(5)
    assert "first" in got and "second" not in got
    held.pop().release()
    second.join(5)
    assert "second" in got
    for slot in got.values():
        slot.release()
    assert not list((slots[0].parent / "line").iterdir()), "every ticket left the line"


def test_a_ticket_left_by_a_dead_kernel_holds_nobody_up(slots):
    waiter = subprocess.Popen([sys.executable, "-c", (
        "import time; from gptlib.support.run_slots import take_slot\n"
        "s = [take_slot(), take_slot()]; print('held', flush=True); take_slot()")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert waiter.stdout.readline().strip() == "held"
    line = slots[0].parent / "line"
    deadline = time.monotonic() + 10
    while not list(line.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(line.iterdir()), "the third take_slot waits in line"
    waiter.kill()  # its two slots and its place in line go with it; its ticket file stays
    waiter.wait()
    with take_slot(stop=threading.Event(), poll=0.02) as slot:
        assert slot is not None and slot.fd is not None


def test_stop_while_waiting_gives_up_the_turn(slots):
    held = [take_slot(), take_slot()]
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    assert take_slot(stop=stop, poll=0.02) is None
    for slot in held:
        slot.release()


def test_a_killed_kernel_gives_its_slot_back(slots, tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from gptlib.support.run_slots import take_slot\n"
        "s = [take_slot(), take_slot()]; print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert holder.stdout.readline().strip() == "held"
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert take_slot(stop=stop, poll=0.02) is None  # both taken by the other process
    holder.kill()
    holder.wait()
    with take_slot(stop=threading.Event(), poll=0.02) as slot:
        assert slot is not None and slot.fd is not None


def test_slot_files_need_no_write_permission(slots):
    for path in slots:
        path.chmod(0o444)
    with take_slot() as slot:
        assert slot.fd is not None


def test_the_lab_waits_for_its_turn_and_says_so(slots, gptlib_home):
    from gptlib.lab.engine import RunEngine
    from gptlib.notebook import load_profile

    held = [take_slot(), take_slot()]
    engine = RunEngine(load_profile("smoke").config)
    kinds = []
    engine.subscribe(lambda e: kinds.append((e.kind, e.extra.get("slots"))))
    engine.start(engine.base)
    time.sleep(0.5)
    assert ("queued", 2) in kinds and engine.running and not engine.steps_done
    held[0].release()  # a classmate's run ends: this one starts
    assert engine.wait(120) and engine.last_error is None
    assert len(engine.runs) == 1
    kinds.clear()
    engine.start(engine.base)  # the slot given back is free: no waiting
    assert engine.wait(120) and len(engine.runs) == 2
    assert not any(k == "queued" for k, _ in kinds)
    held[1].release()
    held = [take_slot(), take_slot()]
    kinds.clear()
    engine.start(engine.base)
    time.sleep(0.3)
    assert engine.stop()  # Stop while waiting: nothing runs, nothing is recorded
    assert engine.wait(10) and len(engine.runs) == 2 and ("started", None) in kinds
    assert not any(k == "finished" for k, _ in kinds)
    for slot in held:
        slot.release()


def test_the_panel_tells_the_student_they_wait_and_that_stop_cancels(slots, gptlib_home, tmp_path):
    pytest.importorskip("ipywidgets")
    from gptlib.lab.panel import ExperimentPanel
    from gptlib.notebook import load_profile

    held = [take_slot(), take_slot()]
    panel = ExperimentPanel(load_profile("smoke"), output=tmp_path / "lab")
    assert panel.run(wait=False)
    deadline = time.monotonic() + 10
    while not panel.status.value.startswith("waiting") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "runs 2 experiments at a time for the whole class" in panel.status.value
    assert panel.last_message.startswith("Queued: the run starts")
    assert panel.stop() and panel.wait(10)
    assert panel.status.value == "stopped before its turn came: nothing ran" and len(panel.runs) == 0
    assert not panel.run_button.disabled
    for slot in held:
        slot.release()
