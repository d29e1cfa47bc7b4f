"""Rebuild the chapter notebooks and the assignments from their percent-format scripts.

The ``NN_*.py`` scripts (and ``assignments/A*.py``) are the files to edit. This script

1. syncs each script with its ``.ipynb`` (``jupytext --sync``; the newer file wins, so an edit
   made in Jupyter to the ``.ipynb`` is carried back into the script too),
2. executes each notebook with ``GPTLIB_PROFILE=smoke`` (tiny model, made-up data, offline;
   a few seconds each), in ``notebooks/`` as nbval does, and
3. stores outputs only for cells marked ``# NBVAL_CHECK_OUTPUT`` (with their execution
   count, without which nbval ignores a stored output): those are what nbval compares
   against. All other outputs and counts, and the execution metadata, are removed, so the
   ``.ipynb`` files stay small and diff cleanly.

With ``--execute PROFILE`` (``offline``, ``book`` or ``smoke``) step 2 runs that profile
and step 3 keeps every output instead, the lab's widget state included: the chapter
notebooks are committed that way (``--execute offline``), so that GitHub, nbviewer and a
reader who has not run anything see the plots, tables and sources. The profile is recorded
in the notebook's metadata (``gptlib.profile``) and shown by its banner. The checked cells
print only what is the same in every profile, so the tests' smoke run still matches them.

Usage (from the repository root)::

    .venv/bin/python notebooks/build.py --execute offline   # the committed documents (about 20 min)
    .venv/bin/python notebooks/build.py 03_replacing_the_output_head.py 04 A02   # quick smoke check (prefix is enough)
    .venv/bin/python notebooks/build.py --sync-only      # steps 1 only, no execution
    .venv/bin/python notebooks/build.py --refresh-sources  # step 1, then every show_source output
                                                           # redrawn from today's library (seconds)

A quick check (no ``--execute``) leaves only the checked outputs, as the assignments are
kept; rebuild a chapter notebook with ``--execute offline`` before committing it.

A notebook whose execution fails is left unchanged on disk and the script exits non-zero.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # widget_snapshots.py, beside this script
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KEEP_NOTEBOOK_METADATA = ("jupytext", "kernelspec", "language_info")
# What JupyterLab writes for the kernel setup.sh installs: stored as it is, so that opening a
# notebook changes nothing (no "modified" mark, and autosave rewrites nothing).
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def chapter_scripts(names: list[str]) -> list[Path]:
    """The scripts to build (``NN_*.py`` here, ``assignments/A*.py``): all, or those named
    (a name, a file, or a prefix like "03" or "A02")."""
    every = sorted(HERE.glob("[0-9][0-9]_*.py")) + sorted((HERE / "assignments").glob("A[0-9][0-9]_*.py"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".py").removesuffix(".ipynb")
        matches = [p for p in every if p.stem == stem] or [p for p in every if p.stem.startswith(stem)]
        if not matches:
            sys.exit(f"{name!r} matches no notebook script; choose from: {', '.join(p.name for p in every)}")
        chosen += [p for p in matches if p not in chosen]  # a prefix may pick several ("A": all assignments)
    return chosen


def sync(script: Path) -> None:
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(script)], check=True)


def _js_numbers(value):
    """JSON as a browser sends it back: whole-number floats become ints (0.0 -> 0)."""
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def as_jupyterlab_saves_it(nb) -> None:
    """Store the notebook as JupyterLab would save it on opening: the kernelspec it reports, the
    kernel's ``language_info`` (nbclient records it; a build without a kernel adds this
    Python's), and the widget state's numbers as the browser writes them. Without this, opening
    a stored notebook marks it modified, and autosave rewrites the .ipynb and its .py."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata.setdefault("language_info", {
        "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py", "mimetype": "text/x-python",
        "name": "python", "nbconvert_exporter": "python", "pygments_lexer": "ipython3",
        "version": ".".join(map(str, sys.version_info[:3]))})
    if "widgets" in nb.metadata:
        nb.metadata["widgets"] = _js_numbers(nb.metadata["widgets"])


def strip_outputs(nb) -> None:
    """Keep outputs only in NBVAL_CHECK_OUTPUT cells; drop other outputs and run metadata.

    nbval treats a cell without an execution count as never run and refuses stored outputs
    there, so checked cells keep their count from the smoke run; all others lose it.
    """
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if CHECK_MARK not in cell.source:
            cell.execution_count = None
            cell.outputs = []


def cell_seconds(cell) -> float | None:
    """How long a cell ran, from the timing nbclient records in its metadata."""
    from datetime import datetime

    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not start or not end:
        return None
    return (datetime.fromisoformat(end.replace("Z", "+00:00"))
            - datetime.fromisoformat(start.replace("Z", "+00:00"))).total_seconds()


def keep_outputs(nb, profile: str) -> None:
    """A document build: every output kept, the profile and each slow cell's seconds recorded
    (``gptlib.seconds``: cell index -> seconds, for cells over 5 s), the rest of the run
    metadata dropped; stored widgets get a static rendering (``widget_snapshots``)."""
    from widget_snapshots import add_snapshots

    nb.metadata = {k: v for k, v in nb.metadata.items() if k in (*KEEP_NOTEBOOK_METADATA, "widgets")}
    seconds = {str(i): round(t, 1) for i, cell in enumerate(nb.cells)
               if (t := cell_seconds(cell)) is not None and t > 5}
    nb.metadata["gptlib"] = {"profile": profile, "seconds": seconds}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    add_snapshots(nb)
    relative_paths(nb)


def relative_paths(nb) -> int:
    """No machine in the documents: the checkout's path becomes relative to the repository,
    gptlib's cache ``$GPTLIB_HOME``, the home folder ``~``, in every stored output. Returns
    the number of outputs changed."""
    from gptlib.support.files import cache_dir

    root = str(HERE.parent)
    swaps = [(f"{root}/", ""), (root, "."), (str(cache_dir()), "$GPTLIB_HOME"), (str(Path.home()), "~")]

    def clean(text):
        if isinstance(text, list):
            return [clean(t) for t in text]
        for old, new in swaps:
            text = text.replace(old, new)
        return text

    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            before = repr(output)
            if "text" in output:
                output["text"] = clean(output["text"])
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in output.get("data", {}):
                    output["data"][kind] = clean(output["data"][kind])
            changed += repr(output) != before
    if "widgets" in nb.metadata:  # the stored widget state (the lab's tables and messages)
        import json

        before = json.dumps(nb.metadata["widgets"])
        after = clean(before.replace("\\/", "/"))
        if after != before:
            nb.metadata["widgets"] = json.loads(after)
            changed += 1
    return changed


def execute(ipynb: Path, timeout: int, profile: str | None = None) -> None:
    """Run the notebook in ``profile`` (smoke when None) and store what the mode keeps."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ipynb, as_version=4)
    env_profile = os.environ.get("GPTLIB_PROFILE")
    os.environ["GPTLIB_PROFILE"] = profile or "smoke"  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True, record_timing=True,
                       resources={"metadata": {"path": str(ipynb.parent)}}).execute()  # as nbval does
    finally:
        if env_profile is None:
            os.environ.pop("GPTLIB_PROFILE", None)
        else:
            os.environ["GPTLIB_PROFILE"] = env_profile
    if profile is None:
        strip_outputs(nb)
    else:
        keep_outputs(nb, profile)
    as_jupyterlab_saves_it(nb)
    nbformat.write(nb, ipynb)


SHOWN = ("gptlib.notebook", "gptlib.data", "gptlib.weights", "gptlib.classifier", "gptlib.train", "gptlib.lora",
         "gptlib.study.inspection", "gptlib.assignments.runner", "gptlib.models.parts")


def shown_object(name: str):
    """The gptlib function or class called ``name`` that a ``show_source(name)`` cell shows."""
    import importlib

    for module in SHOWN:
        obj = vars(importlib.import_module(module)).get(name)
        if obj is not None and getattr(obj, "__module__", None) == module:
            return obj
    raise LookupError(f"show_source({name}): no gptlib function or class of that name in {SHOWN}")


def refresh_sources(ipynb: Path) -> int:
    """Redraw the output of every cell that only calls ``show_source(...)``, as the kernel would,
    from the library as it is now: the stored document never shows code the library no longer
    has. Returns the number of cells redrawn."""
    import re

    import nbformat

    from gptlib.notebook import source_of

    nb = nbformat.read(ipynb, as_version=4)
    redrawn = 0
    for cell in nb.cells:
        lines = [line for line in cell.source.splitlines() if line.strip()] if cell.cell_type == "code" else []
        names = [re.fullmatch(r"show_source\((\w+)\)", line.strip()) for line in lines]
        if not lines or not all(names) or not cell.outputs:
            continue
        outputs = []
        for match in names:
            source = source_of(shown_object(match.group(1))).rstrip("\n")
            fence = "````" if "```" in source else "```"
            outputs.append(nbformat.v4.new_output("display_data", data={
                "text/markdown": f"{fence}python\n{source}\n{fence}", "text/plain": source}))
        cell.outputs = outputs
        redrawn += 1
    relative_paths(nb)
    as_jupyterlab_saves_it(nb)
    nbformat.write(nb, ipynb)
    return redrawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="scripts to build (default: all NN_*.py and assignments/A*.py)")
    parser.add_argument("--sync-only", action="store_true", help="only pair scripts and notebooks")
    parser.add_argument("--refresh-sources", action="store_true",
                        help="pair, then redraw every show_source output from the library (no execution)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell (default 1800)")
    parser.add_argument("--execute", choices=("offline", "book", "smoke"), default=None, metavar="PROFILE",
                        help="run the chapter notebooks in PROFILE and keep every output (the committed "
                             "documents: offline); without it, a smoke run that keeps only checked outputs")
    args = parser.parse_args(argv)
    failed = []
    scripts = chapter_scripts(args.notebooks)
    if args.execute:  # documents are the chapter notebooks; assignments keep only checked outputs
        scripts = [s for s in scripts if s.parent == HERE]
    for script in scripts:
        sync(script)
        if args.sync_only:
            print(f"synced {script.name}")
            continue
        if args.refresh_sources:
            print(f"{script.with_suffix('.ipynb').name}: {refresh_sources(script.with_suffix('.ipynb'))} "
                  "show_source output(s) redrawn")
            os.utime(script)
            continue
        start = time.perf_counter()
        try:
            execute(script.with_suffix(".ipynb"), args.timeout, args.execute)
        except Exception as err:  # report and go on with the other notebooks
            failed.append(script.name)
            print(f"FAILED {script.name}: {type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
            continue
        # The script's text is unchanged (it holds no outputs); refresh its time stamp so that
        # jupytext does not take the just-written .ipynb for a newer edit.
        os.utime(script)
        print(f"built {script.with_suffix('.ipynb').name} in {time.perf_counter() - start:.1f} s")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
