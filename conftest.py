"""Repo-wide pytest setup.

Notebooks (collected by nbval from ``notebooks/``) run under the smoke profile: a tiny
random model and a small data file shipped with gptlib, offline, in seconds. Set
``GPTLIB_PROFILE=book`` to run them as the book does (pretrained gpt2-small, real data).
"""

import os

os.environ.setdefault("GPTLIB_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")

# The activation store's disk half goes to a private folder for the test session, so tests
# never read or fill the user's store (tests that need their own set GPTLIB_STORE_DIR).
if "GPTLIB_STORE_DIR" not in os.environ:
    import tempfile

    os.environ["GPTLIB_STORE_DIR"] = tempfile.mkdtemp(prefix="gptlib-test-store-")
