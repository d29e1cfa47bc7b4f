"""Whose code is the answer: the student's, or the library's or the book's under another name.

Where a task is to *write* a chapter function, the grader reads the notebook's cells (the
text the student handed in, in the grader's own process) and flags the function when

* its name is bound by an import, or by an assignment instead of a ``def``;
* its ``def`` has the same syntax tree as the library's or the book's function once names,
  docstrings and annotations are set aside (a copy with the variables renamed);
* its ``def`` calls the library's or the book's function (a wrapper), directly or through
  a name imported for it;
* a cell does what no task needs and what could put other code under the function's name
  or change how the kernel answers the grader (:data:`EVASIVE`: ``__code__``, ``exec``,
  tracing, IPython's transformers, the import system, builtins, the grader's modules).

A flagged function scores 0 on its check, and the teacher's report says why. What this cannot
see: code written honestly by someone else (a classmate's), or the library's code reached
through text built at run time (the kernel then meets the stubs of
:func:`gptlib.assignments.student.references_disabled`, which the student's code could undo).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Iterable
from typing import Any

# The book's functions the tasks ask students to write (when the book's package is installed).
BOOK = {"calc_accuracy_loader": "llms_from_scratch.ch06", "train_classifier_simple": "llms_from_scratch.ch06",
        "calc_loss_batch": "llms_from_scratch.ch06", "calc_loss_loader": "llms_from_scratch.ch06"}
# Code a cell needs for none of the tasks, that can put other code under a function's name
# or change how the kernel answers the grader: where a task is to write a function, any of it
# in the student's cells flags the function (regular expressions, on the cells' text).
EVASIVE = {
    r"__code__|__wrapped__|\bwraps\b|\bFunctionType\b|\bmarshal\b|\brunpy\b|\breload\b":
        "replaces, copies or wraps a function's code",
    r"(?<![.\w])(exec|eval|compile)\s*\(": "builds code from text at run time",
    r"setprofile|settrace|_getframe|\bf_back\b|\bf_locals\b|\binspect\b": "traces or reads the running code",
    r"get_ipython|input_transformers|ast_transformers|set_custom_exc|InteractiveShell|\bevents\.register":
        "changes how the kernel runs cells",
    r"\bsys\.modules\b|meta_path|path_hooks|__import__|\bimportlib\b|__path__": "changes the import system",
    r"\bbuiltins\b|__builtins__": "changes Python's builtins",
    r"\bthreading\b|\bmultiprocessing\b|\bsubprocess\b|\bos\.system\b|\bsignal\b|gptlib-grader":
        "runs code beside the notebook's, or reads the grader's files",
    r"gptlib\.assignments\.(answer|channel|student|integrity|judge|verify|inputs|feedback|a0\d)\b":
        "reaches into the grader's code",
}
# Calls that reach names computed at run time (found in the syntax tree, however spaced).
COMPUTED = {"getattr", "setattr", "delattr", "globals", "locals", "vars"}


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:  # IPython magics and the like: the cell is skipped
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            return ast.parse("\n".join(lines))
        except SyntaxError:
            return None


class _Renamer(ast.NodeTransformer):
    """Names numbered in order of appearance; docstrings and annotations dropped."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        node.name = "f"
        node.returns = None
        node.decorator_list = []
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:] or [ast.Pass()]
        node.body = body
        self.generic_visit(node)
        return node

    def visit_arg(self, node: ast.arg) -> Any:
        node.arg = self._name(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node: ast.Name) -> Any:
        node.id = self._name(node.id)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> Any:
        new = ast.Assign(targets=[node.target], value=node.value or ast.Constant(None))
        return self.visit(new)


def shape(fn_node: ast.FunctionDef) -> str:
    """The function's syntax tree with its names, docstring and annotations set aside."""
    tree = _Renamer().visit(ast.parse(ast.unparse(fn_node)).body[0])
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _reference_shapes(references: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for ref in references:
        try:
            node = ast.parse(textwrap.dedent(inspect.getsource(ref))).body[0]
        except (OSError, TypeError, SyntaxError, IndexError):
            continue
        if isinstance(node, ast.FunctionDef):
            out.append((ref.__name__, shape(node)))
    return out


def book_functions(names: Iterable[str]) -> list[Any]:
    """The book's functions of these names, when its package is installed."""
    found = []
    for name in names:
        module = BOOK.get(name)
        if module is None:
            continue
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return found


def _statements(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """A cell's statements, also those inside if/for/while/with/try (not inside defs or classes)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(inner, list) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from _statements(inner)
        for handler in getattr(node, "handlers", []) or []:
            yield from _statements(handler.body)


def evasive(sources: Iterable[str]) -> list[str]:
    """What the student's cells do that none of the tasks needs (see :data:`EVASIVE`)."""
    sources = list(sources)
    text = "\n".join(sources)
    found = [f"a cell {label}" for pattern, label in EVASIVE.items() if re.search(pattern, text)]
    for source in sources:
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in COMPUTED and (
                    node.func.id in ("globals", "locals", "vars") or len(node.args) < 2
                    or not isinstance(node.args[1], ast.Constant)):
                label = "a cell reaches names computed at run time (getattr, globals, vars ...)"
                if label not in found:
                    found.append(label)
    return found


def findings(sources: Iterable[str], name: str, references: Iterable[Any]) -> list[str]:
    """Why ``name`` is not the student's own code (empty when nothing was found)."""
    sources = list(sources)
    references = [r for r in references if callable(r)]
    ref_names = {getattr(r, "__name__", "") for r in references} - {""}
    refs = references + book_functions({name} | ref_names)
    ref_names |= {r.__name__ for r in refs}
    found: list[str] = evasive(sources)
    aliases: set[str] = set()
    defined: set[str] = set()  # functions the student's cells define (a call to one is not a wrapper)
    binding: ast.AST | None = None
    for source in sources:
        tree = _parse(source)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    if alias.name.split(".")[-1] in ref_names:
                        aliases.add(bound)
                    if bound == name:
                        binding = node
        for node in _statements(tree.body):
            if isinstance(node, ast.FunctionDef):
                defined.add(node.name)
            if isinstance(node, ast.FunctionDef) and node.name == name:
                binding = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    is_none = isinstance(node.value, ast.Constant) and node.value.value is None
                    binding = None if is_none else node
    aliases -= defined
    if isinstance(binding, (ast.Import, ast.ImportFrom)):
        found.append(f"`{name}` is imported, not written in the notebook")
    elif isinstance(binding, (ast.Assign, ast.AnnAssign)):
        found.append(f"`{name}` is assigned another object, not defined with def")
    elif isinstance(binding, ast.FunctionDef):
        mine = shape(binding)
        if any(mine == theirs for _, theirs in _reference_shapes(refs)):
            found.append(f"`{name}` is the library's or the book's code with the names changed")
        for node in ast.walk(binding):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if isinstance(func, ast.Attribute) and called in ref_names or \
                        isinstance(func, ast.Name) and called in aliases and called != name:
                    found.append(f"`{name}` calls the library's or the book's function for this task")
                    break
    return sorted(set(found))


__all__ = ["BOOK", "COMPUTED", "EVASIVE", "book_functions", "evasive", "findings", "shape"]
