"""Whose code is the answer: the student's, or the library's or the book's under another name.

Where a task is to *write* a chapter function, the grader reads the notebook's cells (the
text the student handed in, in the grader's own process) and flags the function when

* its name is bound by an import, or by an assignment instead of a ``def``;
* its ``def`` has the same syntax tree as the library's or the book's function once names,
  docstrings and annotations are set aside (a copy with the variables renamed);
* its ``def`` calls the library's or the book's function (a wrapper), directly or through
  a name imported for it;
* a cell replaces its code (``__code__``), or rebuilds functions from code objects
  (``types.FunctionType``, ``marshal``, ``runpy``, ``importlib.reload``).

A flagged function scores 0 on its check, and the teacher's report says why. What this cannot
see: code written honestly by someone else (a classmate's), or the library's code reached
through text built at run time (the kernel then meets the stubs of
:func:`gptlib.assignments.student.references_disabled`, which the student's code could undo).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Iterable
from typing import Any

# The book's functions the tasks ask students to write (when the book's package is installed).
BOOK = {"calc_accuracy_loader": "llms_from_scratch.ch06", "train_classifier_simple": "llms_from_scratch.ch06",
        "calc_loss_batch": "llms_from_scratch.ch06", "calc_loss_loader": "llms_from_scratch.ch06"}
REBUILDERS = ("__code__", "FunctionType", "marshal", "runpy", "reload", "exec", "compile")


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


def findings(sources: Iterable[str], name: str, references: Iterable[Any]) -> list[str]:
    """Why ``name`` is not the student's own code (empty when nothing was found)."""
    references = [r for r in references if callable(r)]
    ref_names = {getattr(r, "__name__", "") for r in references} - {""}
    refs = references + book_functions({name} | ref_names)
    ref_names |= {r.__name__ for r in refs}
    found: list[str] = []
    aliases: set[str] = set()
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
            elif isinstance(node, ast.Attribute) and node.attr in REBUILDERS or \
                    isinstance(node, ast.Name) and node.id in REBUILDERS[1:]:
                label = node.attr if isinstance(node, ast.Attribute) else node.id
                if label not in ("exec", "compile") or isinstance(node, ast.Name):
                    found.append(f"a cell uses {label}, which can put other code under a function's name")
        for node in _statements(tree.body):
            if isinstance(node, ast.FunctionDef) and node.name == name:
                binding = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                    is_none = isinstance(node.value, ast.Constant) and node.value.value is None
                    binding = None if is_none else node
    defined = {n.name for source in sources if (t := _parse(source)) is not None for n in _statements(t.body)
               if isinstance(n, ast.FunctionDef)}
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


__all__ = ["BOOK", "book_functions", "findings", "shape"]
