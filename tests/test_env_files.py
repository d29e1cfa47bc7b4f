"""The two environment files list the same packages; README shows CI's exact test command."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
IGNORED = {"python", "pip"}


def normalize(requirement: str) -> str:
    """The PEP 503 name of a requirement line: 'Torch>=2.2,<3' -> 'torch'."""
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert name, f"cannot read a package name from {requirement!r}"
    return re.sub(r"[-_.]+", "-", name.group(1)).lower()


def pyproject_packages() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {normalize(r) for r in requirements} - IGNORED


def environment_pip_packages(text: str) -> set[str]:
    """Names in the ``- pip:`` list of environment.yml (plain text parsing, no yaml needed)."""
    names: set[str] = set()
    in_pip = False
    pip_indent = 0
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        item = stripped.strip()
        if re.fullmatch(r"-\s*pip\s*:", item):
            in_pip, pip_indent = True, indent
            continue
        if in_pip:
            if indent <= pip_indent or not item.startswith("-"):
                in_pip = False
                continue
            entry = item[1:].strip().strip("'\"")
            if entry.startswith("-e") or entry in (".", "-e ."):
                continue
            names.add(normalize(entry))
    return names - IGNORED


def test_parser_reads_a_pip_section():
    text = "dependencies:\n  - python>=3.10\n  - pip\n  - pip:\n      - Torch==2.0  # pinned\n" \
           "      - typing_extensions\n      - -e .\n  - numpy\n"
    assert environment_pip_packages(text) == {"torch", "typing-extensions"}


def test_environment_yml_and_pyproject_list_the_same_packages():
    ours = pyproject_packages()
    conda = environment_pip_packages((REPO / "environment.yml").read_text())
    assert ours, "no dependencies found in pyproject.toml"
    assert {"torch", "tiktoken", "pandas", "pytest"} <= ours
    assert conda == ours, (f"only in pyproject.toml: {sorted(ours - conda)}; "
                           f"only in environment.yml: {sorted(conda - ours)}")


def test_environment_yml_installs_the_package_itself():
    text = (REPO / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*-e\s+\.\s*$", text, re.M), "environment.yml should install gptlib (-e .)"


def ci_test_command() -> str:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    return commands[-1]


def test_readme_shows_the_ci_test_command():
    command = ci_test_command()
    assert "pytest" in command
    readme = (REPO / "README.md").read_text()
    assert command in readme, f"README.md should show CI's test command verbatim: {command!r}"
