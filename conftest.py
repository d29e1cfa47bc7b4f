"""Repo-wide pytest setup.

Notebooks (collected by nbval from ``notebooks/``) run under the smoke profile: a tiny
random model and a small data file shipped with gptlib, offline, in seconds. Set
``GPTLIB_PROFILE=book`` to run them as the book does (pretrained gpt2-small, real data).
"""

import os

os.environ.setdefault("GPTLIB_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
