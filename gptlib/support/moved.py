"""Old import paths, kept for one release: ``import gptlib.fast`` still works and gives the
module at its new home, with a ``DeprecationWarning`` that names it.

The modules moved when gptlib's top level became the book in reading order (speed-ups into
``gptlib.speed``, plumbing into ``gptlib.support``, notebook 08's tools and the experiments
registry into ``gptlib.study``). Notebooks and released assignments written before that keep
running; new code imports the new paths.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "gptlib.fast": "gptlib.speed.cached",
    "gptlib.fast_math": "gptlib.speed.kernels",
    "gptlib.store": "gptlib.speed.store",
    "gptlib.base_models": "gptlib.speed.shared_base",
    "gptlib.memory": "gptlib.speed.memory",
    "gptlib.files": "gptlib.support.files",
    "gptlib.download": "gptlib.support.download",
    "gptlib.weight_files": "gptlib.support.weight_files",
    "gptlib.device": "gptlib.support.device",
    "gptlib.own_data": "gptlib.support.own_data",
    "gptlib.noise": "gptlib.support.noise",
    "gptlib.inspection": "gptlib.study.inspection",
    "gptlib.experiments": "gptlib.study.experiments",
    "gptlib.widgets": "gptlib.lab.widgets",
    "gptlib.book_core": "gptlib.train",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at its new home (one module object)."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there ({spec.name} goes in the next "
                      "release).", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        pass  # the module at its new home is already executed


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
