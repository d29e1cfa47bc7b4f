"""The data notebook on the real SMS Spam Collection reproduces the book's counts.

Runs ``notebooks/02_data_and_padding.ipynb`` under the smoke profile but with
``GPTLIB_DATA_DIR`` pointing at ``../shared/data/sms_spam_collection``: the notebook then
asserts the book's numbers (5,572 rows, 747/747, 1,045/149/300, max length 120, 130/19/38
batches). Skips where the real data is absent.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = REPO.parent / "shared" / "data" / "sms_spam_collection"
NOTEBOOK = REPO / "notebooks" / "02_data_and_padding.ipynb"


@pytest.mark.slow
@pytest.mark.realdata
def test_data_notebook_on_the_real_file_prints_the_books_counts(tmp_path, monkeypatch):
    if not (REAL_DATA_DIR / "SMSSpamCollection").exists():
        pytest.skip(f"real data not found at {REAL_DATA_DIR}")
    monkeypatch.setenv("GPTLIB_PROFILE", "smoke")
    monkeypatch.setenv("GPTLIB_DATA_DIR", str(REAL_DATA_DIR))
    monkeypatch.setenv("GPTLIB_HOME", str(tmp_path / "home"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(
        out.get("text", "") + "".join(str(v) for v in out.get("data", {}).values())
        for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    for count in ("5,572", "1,045", "149", "300", "120"):
        assert count in text.replace("5572", "5,572").replace("1045", "1,045"), count
