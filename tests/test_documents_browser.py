"""Notebook 06 as a new user first sees it: a fresh copy, untrusted and unrun, in JupyterLab in
headless Chromium. JupyterLab will not run widget code for an untrusted notebook, so what shows
is each output's static rendering: the lab must appear as its stored picture (curves as a PNG,
the runs table as HTML), never as a ``VBox(children=...`` repr.

Set $GPTLIB_DOC_SCREENSHOT to a file name to keep the screenshot (it goes to the test's
temporary folder otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_lab_browser import CHROMIUM, CHROMIUM_ARGS, NOTEBOOK, _accept_dialogs, lab_server  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_the_lab_notebook_shows_its_static_rendering_untrusted_and_unrun(lab_server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    base_url, _ = lab_server
    shot = Path(os.environ.get("GPTLIB_DOC_SCREENSHOT") or tmp_path / "06-untrusted.png")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1600})
            page.set_default_timeout(120_000)
            page.goto(f"{base_url}/lab/tree/{NOTEBOOK.name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
            _accept_dialogs(page)
            stored = page.locator(".jp-OutputArea-output", has_text="stored copy").first
            stored.wait_for(state="attached", timeout=60_000)
            stored.scroll_into_view_if_needed()
            text = page.locator(".jp-NotebookPanel").inner_text()
            assert "VBox(children" not in text and "HTML(value=" not in text
            assert page.locator(".jp-OutputArea-output table", has_text="train-val gap").count() >= 1, \
                "the runs table of the stored lab is not shown"
            curves = page.locator(".jp-OutputArea-output img")
            assert curves.count() >= 1, "no stored picture of the lab's curves"
            natural = curves.first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert natural[0] > 200, f"the curves' image did not load: {natural}"
            stored.screenshot(path=str(shot))
        finally:
            browser.close()
