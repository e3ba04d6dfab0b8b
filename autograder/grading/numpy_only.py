"""NumPy-only exercises: find code that reaches for torch, scipy or a way around the rule.

The check reads the submitted notebook's code; it never runs it, so nothing a student's code does
can switch it off. Rules for an assignment whose suite declares ``NUMPY_ONLY = True``:

* imports are limited to :data:`ALLOWED_IMPORTS` (numpy and a few pure-Python helpers);
* the names in :data:`FORBIDDEN_NAMES` may not appear at all — torch, scipy, the course's own
  PyTorch-backed helpers, and every door to other modules or to code built at run time
  (``__import__``, ``importlib``, ``exec``, ``eval``, ``sys``, ``builtins``, ``getattr`` with a
  computed or dunder name, dunder attributes, shell escapes).

Instructor cells (locked or test cells, which nbgrader restores from its own copy) are not read.
A finding in an exercise's solution cell costs that exercise; a finding in a cell the student
added taints every name that cell defines, and every exercise whose code uses a tainted name
(directly or through other cells) is charged too. Code that cannot be attributed — run-time code
generation outside any solution cell — is charged to every exercise.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field

from nbformat.notebooknode import NotebookNode

from .notebooks import nbgrader_meta

ALLOWED_IMPORTS = {"numpy", "math", "itertools", "functools", "collections", "typing", "dataclasses",
                   "time", "random"}
FORBIDDEN_NAMES = {
    "torch", "scipy", "autograder", "suite", "ref", "reference", "checks",
    "__import__", "importlib", "__builtins__", "builtins", "exec", "eval", "compile", "globals",
    "locals", "vars", "sys", "os", "ctypes", "subprocess", "get_ipython", "__loader__", "__spec__",
}
ALLOWED_DUNDERS = {"__init__", "__name__", "__doc__", "__call__", "__len__", "__repr__", "__str__"}
DYNAMIC = {"__import__", "importlib", "exec", "eval", "compile", "get_ipython", "builtins", "__builtins__"}


@dataclass
class CellReport:
    cell_id: str
    exercise: str | None  # the exercise whose solution cell this is; None for a cell the student added
    findings: list[str] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)


SAFE_MAGICS = ("timeit", "time", "matplotlib")
_MAGIC_OPTIONS_WITH_VALUE = {"-n", "-r", "-p"}


def _unwrap_safe_magics(source: str) -> str:
    """``%timeit -n 3 expr`` -> ``expr`` (still read), ``%%time`` and ``%matplotlib inline`` -> dropped.

    Timing one's code is fine; every other magic and shell escape stays and is read as
    ``get_ipython()`` code built at run time.
    """
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("%%") and stripped[2:].split(" ")[0] in SAFE_MAGICS:
            continue
        if stripped.startswith("%") and not stripped.startswith("%%"):
            name, _, rest = stripped[1:].partition(" ")
            if name == "matplotlib":
                continue
            if name in ("timeit", "time"):
                tokens = rest.split()
                while tokens and tokens[0].startswith("-"):
                    tokens = tokens[2:] if tokens[0] in _MAGIC_OPTIONS_WITH_VALUE else tokens[1:]
                lines.append(indent + " ".join(tokens))
                continue
        lines.append(line)
    return "\n".join(lines)


def _python(source: str) -> str:
    """Cell source as plain Python: other IPython magics and shell escapes become calls we can see."""
    source = _unwrap_safe_magics(source)
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # without IPython, magics stay syntax errors (reported as such)
        return source
    return TransformerManager().transform_cell(source)


def scan(source: str) -> tuple[list[str], set[str], set[str]]:
    """(findings, names defined at top level, names used anywhere) of one cell's code."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return [], set(), set()  # such a cell fails when nbgrader runs it; nothing to attribute
    findings: list[str] = []

    def found(node: ast.AST, what: str) -> None:
        findings.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in ALLOWED_IMPORTS:
                    found(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module.split(".")[0] not in ALLOWED_IMPORTS:
                found(node, f"imports from {'.' * node.level}{module}")
        elif isinstance(node, ast.Name):
            if node.id in FORBIDDEN_NAMES:
                found(node, f"uses {node.id}")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in ALLOWED_DUNDERS:
                found(node, f"uses the attribute {node.attr}")
            elif node.attr in {"torch", "scipy", "modules"}:
                found(node, f"uses the attribute .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in {"getattr", "setattr"}:
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)) or name.value.startswith("__"):
                found(node, f"calls {node.func.id} with a computed or special name")
    return findings, _defined(tree), _global_uses(_python(source))


def _global_uses(code: str) -> set[str]:
    """Names the cell reads from the notebook's global namespace (not parameters or locals)."""
    names: set[str] = set()

    def walk(table: symtable.SymbolTable) -> None:
        for sym in table.get_symbols():
            if not sym.is_referenced():
                continue
            if table.get_type() == "module" or sym.is_global() or sym.is_declared_global():
                names.add(sym.get_name())
        for child in table.get_children():
            walk(child)

    walk(symtable.symtable(code, "<cell>", "exec"))
    return names


def _defined(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
                    names.add(sub.id)
    return names


def check_notebook(submitted: NotebookNode, source: NotebookNode) -> dict[str, str]:
    """exercise -> the reason it breaks the NumPy-only rule, for a submitted notebook.

    ``source`` is the instructor's notebook: it says which cells are the instructor's (skipped)
    and which solution cell belongs to which exercise (``<exercise>_code``).
    """
    exercises = [nbgrader_meta(c)["grade_id"] for c in source.cells
                 if nbgrader_meta(c).get("grade") and not nbgrader_meta(c).get("solution")]
    instructor = {nbgrader_meta(c)["grade_id"] for c in source.cells
                  if nbgrader_meta(c).get("locked") or nbgrader_meta(c).get("grade")}
    solution_of = {f"{e}_code": e for e in exercises}

    reports: list[CellReport] = []
    for index, cell in enumerate(submitted.cells):
        if cell.cell_type != "code":
            continue
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in instructor and not nbgrader_meta(cell).get("solution"):
            continue  # nbgrader runs the instructor's copy of this cell, whatever the submission says
        findings, defines, uses = scan(cell.source)
        reports.append(CellReport(gid or f"added cell {index + 1}", solution_of.get(gid), findings, defines, uses))

    charged: dict[str, str] = {}
    for r in reports:
        if r.findings and r.exercise:
            charged.setdefault(r.exercise, f"{r.cell_id}: {r.findings[0]}")
    unattributed = [r for r in reports if r.findings and r.exercise is None
                    and any(name in f for f in r.findings for name in DYNAMIC)]
    if unattributed:
        r = unattributed[0]
        for e in exercises:
            charged.setdefault(e, f"{r.cell_id}: {r.findings[0]} (code built at run time could be used by any exercise)")

    # Names defined by an offending cell are tainted; so is whatever a cell using them defines.
    taint = {name: f"{r.cell_id}: {r.findings[0]}" for r in reports if r.findings for name in r.defines}
    changed = True
    while changed:
        changed = False
        for r in reports:
            hit = sorted(r.uses & set(taint))
            if not hit:
                continue
            reason = f"uses {hit[0]}, which comes from {taint[hit[0]]}"
            if r.exercise and r.exercise not in charged:
                charged[r.exercise] = f"{r.cell_id}: {reason}"
                changed = True
            for name in r.defines - set(taint):
                taint[name] = f"{r.cell_id}: {reason}"
                changed = True
    return {e: charged[e] for e in exercises if e in charged}


def applies_to(assignment: str) -> bool:
    """Whether ``assignment``'s suite declares its exercises NumPy-only (``NUMPY_ONLY = True``)."""
    import importlib

    try:
        suite = importlib.import_module(f"autograder.suites.{assignment}")
    except ModuleNotFoundError:
        return False
    return bool(getattr(suite, "NUMPY_ONLY", False))


def explain(exercise: str, reason: str) -> str:
    return (f"{exercise}: NumPy only — {reason}. Exercises in this assignment must be written with numpy "
            "(and math, itertools, functools, collections); torch, scipy, the course's helpers and "
            "run-time imports are not allowed, so this exercise scores 0.")
