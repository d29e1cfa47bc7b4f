#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv from this repo's own files.
# torch is pinned to 2.13.0 first so pip takes the CPU wheel; pyproject.toml's range admits it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
# nbgrader (the assignments' tests) with torch held at the pin, so no resolve can swap in another torch.
.venv/bin/python -m pip install -q "nbgrader==0.9.6" "jupyterhub==6.1.1" "configurable-http-proxy==0.4.0" -c <(echo "torch==2.13.0")
.venv/bin/python -m pip install -q -e ".[notebooks,test,browser]"
# The book's own package, for equivalence tests and benchmarks only (its dependencies are ours).
.venv/bin/python -m pip install -q --no-deps "llms-from-scratch==1.0.19"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
# The lab's browser test needs Debian's Chromium; install it where we may (root with apt-get),
# otherwise that one test skips with a note.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "note: could not install chromium; the browser test will skip"
fi
echo "gptlib environment ready in .venv"
