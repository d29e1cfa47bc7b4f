"""The lab notebook in a real browser: JupyterLab on 127.0.0.1, driven by headless Chromium.

Opens a copy of notebooks/06_experiment_lab.ipynb, runs all cells (smoke profile), presses the
panel's Run button, waits for the new row of the runs table and for the curves, chooses LoRA and
opens the advanced settings (their controls must show inside the panel), runs LoRA, and takes a
screenshot of the panel (and one at a narrower window, 968 px, into the test's folder): into the test's temporary folder, or to the file named by
$GPTLIB_LAB_SCREENSHOT (``GPTLIB_LAB_SCREENSHOT=figures/lab-screenshot.png`` renews the
README's picture), so a test run never changes a tracked file.

Needs /usr/bin/chromium and the Playwright Python package (``bash scripts/setup.sh, as root``);
skips where either is missing. Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "06_experiment_lab.ipynb"
DOCUMENT = REPO / "notebooks" / "05_finetuning_and_evaluation.ipynb"  # opened as committed, not run
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SERVER_START_S = 180  # JupyterLab's first start on a busy 2-core machine can be slow
NOTEBOOK_RUN_MS = 300_000  # all cells, including the first fine-tuning run (torch warm-up)
PANEL_RUN_MS = 180_000  # one run started with the panel's button
RUN_ROWS = ".gptlib-runs-table table.gptlib-runs tbody tr"
NARROW_WIDTH = 968  # a laptop's half screen


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _status(url: str, timeout: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status


def _log_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def _stop_server(proc: subprocess.Popen) -> None:
    """Stop JupyterLab: on SIGTERM it shuts its kernels down, then exits; kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@pytest.fixture
def lab_server(tmp_path):
    """JupyterLab serving a folder that holds a copy of the lab notebook; yields its base URL."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found (install it with: bash scripts/setup.sh, as root)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (bash scripts/setup.sh, as root)")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    shutil.copy(DOCUMENT, root / DOCUMENT.name)
    settings = tmp_path / "lab-settings"
    notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # render every cell, not only those in view, so that a stored plot far down is in the page
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))

    env = {k: v for k, v in os.environ.items() if k not in ("GPTLIB_DATA_DIR", "JUPYTER_TOKEN")}
    env.update(
        GPTLIB_PROFILE="smoke", GPTLIB_HOME=str(tmp_path / "gptlib_home"), MPLBACKEND="Agg",
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        IPYTHONDIR=str(tmp_path / "ipython"), OMP_NUM_THREADS="1",
    )
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--port-retries=0", f"--ServerApp.root_dir={root}", "--IdentityProvider.token=",
        "--ServerApp.password=", f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={tmp_path / 'lab-workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers often run as root
        cmd.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + SERVER_START_S
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited with code {proc.returncode}:\n{_log_tail(log_path)}")
                try:
                    if _status(f"{base_url}/api/status") == 200:
                        break
                except (OSError, urllib.error.URLError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{_log_tail(log_path)}")
                time.sleep(0.5)
            yield base_url, log_path
        finally:
            _stop_server(proc)


def _accept_dialogs(page) -> None:
    """Accept a dialog JupyterLab may show on opening (e.g. kernel selection)."""
    dialog_button = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog_button.count():
        dialog_button.first.click()


def _choose(page, label: str, option: str) -> None:
    """Choose ``option`` in the panel's dropdown labelled ``label``."""
    dropdown = page.locator(".gptlib-lab .widget-dropdown").filter(
        has=page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$")))
    dropdown.locator("select").first.select_option(label=option)


def _outside_panel(page) -> list[str]:
    """The panel's shown labels, inputs, menus and boxes that reach beyond its left or right edge
    (or the window's): one line each."""
    return page.evaluate("""() => {
        const panel = document.querySelector('.gptlib-lab').getBoundingClientRect();
        const right = Math.min(panel.right, window.innerWidth);
        const parts = '.widget-label, select, input, textarea, button, .gptlib-lora, .gptlib-advanced';
        return [...document.querySelector('.gptlib-lab').querySelectorAll(parts)]
            .filter(e => e.offsetParent !== null && e.getBoundingClientRect().width > 0)
            .filter(e => { const r = e.getBoundingClientRect(); return r.left < panel.left - 1 || r.right > right + 1; })
            .map(e => { const r = e.getBoundingClientRect();
                        return `${e.tagName}.${e.className} '${(e.textContent || e.value || '').slice(0, 30)}' `
                               + `${r.left.toFixed(0)}..${r.right.toFixed(0)} outside ${panel.left.toFixed(0)}..${right.toFixed(0)}`; });
    }""")


def test_lab_notebook_runs_in_jupyterlab(lab_server, tmp_path):
    screenshot = REPO / os.environ["GPTLIB_LAB_SCREENSHOT"] if os.environ.get("GPTLIB_LAB_SCREENSHOT") \
        else tmp_path / "lab-screenshot.png"  # a relative name is taken from the repository root
    from playwright.sync_api import sync_playwright

    base_url, log_path = lab_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2400})
            page.set_default_timeout(120_000)
            page.goto(f"{base_url}/lab/tree/{NOTEBOOK.name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _accept_dialogs(page)
            # the kernel must be ready before "Run All Cells" is useful
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-Toolbar-kernelStatus')]"
                ".some(e => /Idle/.test(e.textContent || e.title || ''))",
                timeout=180_000)
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).first.click()
            page.locator('li[data-command="runmenu:run-all"], li[data-command="notebook:run-all-cells"]').first.click()

            # all cells ran: the last cell's output names its second message
            last_output = page.locator(".jp-OutputArea-output", has_text="Running late, be there in 10 minutes.")
            last_output.last.wait_for(timeout=NOTEBOOK_RUN_MS)
            rows = page.locator(RUN_ROWS)
            rows.first.wait_for(timeout=60_000)
            assert rows.count() == 1, "the programmatic run of the notebook should have made one row"

            for label in ("what trains", "token read", "padding", "learning rate", "training messages"):
                assert page.locator(".gptlib-lab .widget-label", has_text=label).first.is_visible(), label
            run_button = page.locator("button.gptlib-run")
            run_button.scroll_into_view_if_needed()
            run_button.click()
            page.wait_for_function(
                f"() => document.querySelectorAll('{RUN_ROWS}').length >= 2", timeout=PANEL_RUN_MS)
            page.wait_for_function(
                "() => { const b = document.querySelector('button.gptlib-run'); return b && !b.disabled; }",
                timeout=60_000)
            curves = page.locator(".gptlib-curves circle.pt")
            assert curves.count() > 0, "the live curves show no points"
            status = page.locator(".gptlib-status").inner_text()
            assert "done" in status, f"panel status after the run: {status!r}"

            second = rows.nth(1).inner_text()
            assert re.search(r"\d+\.\d\d%", second), second
            # the second run's time: in the status line, the message and its row's seconds column
            message = page.locator(".gptlib-message").inner_text()
            seconds = re.search(r"Run 2 done: test accuracy [\d.]+% \([\d,]+ examples seen, ([\d.]+) s\)", message)
            assert seconds, f"panel message after the second run: {message!r}"
            assert seconds.group(1) in status, (status, message)
            assert float(seconds.group(1)) < 60, "a second smoke run took a minute or more"

            # the book's bonus table, below the runs table and inside the panel, readable
            panel = page.locator(".gptlib-lab").first
            page.locator(".gptlib-lab label", has_text="show the book's bonus results").first.click()
            book = page.locator(".gptlib-book-table table.gptlib-book")
            book.wait_for(state="visible", timeout=30_000)
            book.scroll_into_view_if_needed()
            panel_box, book_box = panel.bounding_box(), book.bounding_box()
            runs_box = page.locator(".gptlib-runs-table").first.bounding_box()
            assert book_box["y"] >= runs_box["y"] + runs_box["height"] - 1, "the book's table is not below the runs"
            assert book_box["x"] >= panel_box["x"] - 1, (book_box, panel_box)
            box = page.locator(".gptlib-book-table .gptlib-table-box").first.bounding_box()
            assert box["x"] + box["width"] <= panel_box["x"] + panel_box["width"] + 1, (box, panel_box)
            cell = page.locator(".gptlib-book-table td", has_text="99.33%").first
            assert cell.is_visible() and cell.bounding_box()["x"] < panel_box["x"] + panel_box["width"]
            runs_table = page.locator(".gptlib-runs-table .gptlib-table-box").first.bounding_box()
            assert runs_table["x"] + runs_table["width"] <= panel_box["x"] + panel_box["width"] + 1

            # LoRA: its controls appear under "what trains", inside the panel; a LoRA run adds a row
            _choose(page, "what trains", "LoRA adapters (appendix E)")
            lora_box = page.locator(".gptlib-lab .gptlib-lora")
            lora_box.wait_for(state="visible", timeout=30_000)
            for label in ("rank r", "alpha", "scale by", "new head gets", "merged"):
                assert lora_box.locator("label", has_text=label).first.is_visible(), label
            assert "scale = alpha = 16" in lora_box.inner_text()
            # the advanced section opens on a click and shows its three settings
            page.locator(".gptlib-advanced").get_by_text("advanced:", exact=False).first.click()
            page.locator(".gptlib-advanced .widget-label", has_text="accumulation steps").first.wait_for(
                state="visible", timeout=30_000)
            for label in ("ignore", "causal attention mask"):
                assert page.locator(".gptlib-advanced", has_text=label).first.is_visible(), label
            assert not _outside_panel(page), _outside_panel(page)
            run_button.scroll_into_view_if_needed()
            run_button.click()
            page.wait_for_function(
                f"() => document.querySelectorAll('{RUN_ROWS}').length >= 3", timeout=PANEL_RUN_MS)
            page.wait_for_function(
                "() => { const b = document.querySelector('button.gptlib-run'); return b && !b.disabled; }",
                timeout=60_000)
            assert "r16 a16 alpha, head adapter" in rows.nth(2).inner_text(), rows.nth(2).inner_text()
            runs_table = page.locator(".gptlib-runs-table .gptlib-table-box").first.bounding_box()
            panel_box = panel.bounding_box()
            assert runs_table["x"] + runs_table["width"] <= panel_box["x"] + panel_box["width"] + 1

            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.set_viewport_size({"width": 1500, "height": 3600})  # the whole panel, book table included
            page.wait_for_timeout(1000)
            assert not _outside_panel(page), _outside_panel(page)
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(screenshot))

            # a narrower window: the settings' two columns become one, and nothing leaves the panel
            page.set_viewport_size({"width": NARROW_WIDTH, "height": 4400})
            page.wait_for_timeout(1000)
            assert not _outside_panel(page), _outside_panel(page)
            assert panel.bounding_box()["x"] + panel.bounding_box()["width"] <= NARROW_WIDTH + 1
            narrow = tmp_path / "lab-screenshot-narrow.png"
            panel.scroll_into_view_if_needed()
            panel.screenshot(path=str(narrow))
            print(f"screenshots: {screenshot} and {narrow}")
        except Exception:
            print(_log_tail(log_path))
            raise
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000


def test_committed_notebook_shows_its_plots_without_running(lab_server, tmp_path):
    """Notebook 05 as committed: a reader who opens it and runs nothing sees the banner, the
    library's source and the training plots."""
    from playwright.sync_api import sync_playwright

    base_url, _ = lab_server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1600})
            page.set_default_timeout(120_000)
            page.goto(f"{base_url}/lab/tree/{DOCUMENT.name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _accept_dialogs(page)
            page.locator(".jp-OutputArea-output", has_text="Profile").first.wait_for(state="visible", timeout=60_000)
            plot = page.locator(".jp-OutputArea-output img").first
            plot.wait_for(state="attached", timeout=60_000)
            plot.scroll_into_view_if_needed()
            box = plot.bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, f"the stored plot is not shown: {box}"
            natural = plot.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert natural[0] > 200, f"the image did not load: {natural}"
            page.screenshot(path=str(tmp_path / "notebook-05-as-committed.png"))
        finally:
            browser.close()
