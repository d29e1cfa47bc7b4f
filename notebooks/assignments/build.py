"""Rebuild the assignment notebooks (solutions included) from their percent-format scripts.

The ``A*.py`` scripts are the files to edit. For each one this script

1. syncs it with its ``.ipynb`` (``jupytext --sync``; the newer file wins),
2. executes the notebook with ``GPTLIB_PROFILE=smoke`` in this folder, as nbval does, so that
   a solution that fails its own check is caught here, and
3. keeps outputs only for cells marked ``# NBVAL_CHECK_OUTPUT`` and drops execution counts
   and run metadata, so the files stay small and diff cleanly.

Usage (from the repository root)::

    .venv/bin/python notebooks/assignments/build.py            # all assignments
    .venv/bin/python notebooks/assignments/build.py A03        # some (a prefix is enough)
    .venv/bin/python notebooks/assignments/build.py --sync-only

The student versions are made from the ``.ipynb`` files by
``python -m gptlib assignments build OUTDIR`` (see README.md here).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
KEEP_NOTEBOOK_METADATA = ("jupytext", "kernelspec")


def scripts(names: list[str]) -> list[Path]:
    every = sorted(HERE.glob("A[0-9][0-9]_*.py"))
    if not names:
        return every
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".py").removesuffix(".ipynb")
        matches = [p for p in every if p.stem == stem] or [p for p in every if p.stem.startswith(stem)]
        if len(matches) != 1:
            sys.exit(f"{name!r} matches {len(matches)} assignment scripts; choose from: "
                     f"{', '.join(p.name for p in every)}")
        chosen.append(matches[0])
    return chosen


def strip_outputs(nb) -> None:
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NOTEBOOK_METADATA}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        if CHECK_MARK in cell.source:
            for output in cell.outputs:
                if "execution_count" in output:
                    output["execution_count"] = None
        else:
            cell.outputs = []


def execute(ipynb: Path, timeout: int) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ipynb, as_version=4)
    before = os.environ.get("GPTLIB_PROFILE")
    os.environ["GPTLIB_PROFILE"] = "smoke"
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
        if before is None:
            os.environ.pop("GPTLIB_PROFILE", None)
        else:
            os.environ["GPTLIB_PROFILE"] = before
    strip_outputs(nb)
    nbformat.write(nb, ipynb)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="scripts to build (default: all A*.py)")
    parser.add_argument("--sync-only", action="store_true", help="only pair scripts and notebooks")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    args = parser.parse_args(argv)
    failed = []
    for script in scripts(args.notebooks):
        subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(script)], check=True)
        if args.sync_only:
            print(f"synced {script.name}")
            continue
        start = time.perf_counter()
        try:
            execute(script.with_suffix(".ipynb"), args.timeout)
        except Exception as err:  # report, go on with the others
            failed.append(script.name)
            print(f"FAILED {script.name}: {type(err).__name__}: {str(err)[-2000:]}", file=sys.stderr)
            continue
        os.utime(script)  # the script is unchanged; keep it newer than the rewritten .ipynb
        print(f"built {script.with_suffix('.ipynb').name} in {time.perf_counter() - start:.1f} s")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
