"""The one thing still read from the student's code: a function an exercise itself forbids.

What a kernel may import is decided by its environment (:class:`.sandbox.KernelSite`): a NumPy-only
assignment's kernels have no torch or scipy at all. What an environment cannot express is "write
``pad2d`` without ``np.pad``" — numpy must be there, and ``np.pad`` with it. For those few
exercises (:data:`autograder.profiles.PROFILES`, ``restrictions``) this module reads the code,
without running it, and charges the exercise whose code — its answer cell, or any cell whose
names that answer uses, directly or through other cells — names the forbidden function, imports
the forbidden module, or reaches functions by a name it computes (``getattr(np, name)``,
``__import__``, ``exec``), which would hide which one it calls.

It never charges anything else: imports, prints, plots, helper functions and scratch cells cost
nothing. Cell roles come from :mod:`.assemble`; Validate prints the same findings first.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field

from nbformat.notebooknode import NotebookNode

from ..profiles import Restriction, profile
from .assemble import ADDED, ANSWER, exercise_of, role

DYNAMIC_CALLS = {"getattr", "__import__", "exec", "eval", "compile", "globals", "vars", "locals"}
DYNAMIC_NAMES = {"importlib", "__builtins__", "builtins", "get_ipython"}
DYNAMIC_ATTRS = {"__dict__", "__getattribute__", "__getattr__", "import_module"}


@dataclass
class CellReport:
    label: str  # how a message names the cell: "pad2d_code" or "added cell 14"
    exercise: str | None  # the exercise this cell answers, None for an added cell
    findings: list[str] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)


SAFE_MAGICS = ("timeit", "time", "matplotlib")
_MAGIC_OPTIONS_WITH_VALUE = {"-n", "-r", "-p"}


def _unwrap_safe_magics(source: str) -> str:
    """``%timeit -n 3 expr`` -> ``expr`` (still read), ``%%time`` and ``%matplotlib inline`` -> dropped."""
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


def python_source(source: str) -> str:
    """Cell source as plain Python: IPython magics and shell escapes become calls we can read."""
    source = _unwrap_safe_magics(source)
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - odd input: read it as it is
        return source


def scan(source: str, rule: Restriction) -> tuple[list[str], set[str], set[str]]:
    """(findings against ``rule``, names defined at top level, names used from the notebook)."""
    code = python_source(source)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return [], set(), set()  # such a cell fails when it runs; there is nothing to attribute
    findings: list[str] = []
    enclosing: dict[int, str] = {}  # id(node) -> the function or class it sits in
    for outer in ast.walk(tree):
        if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for inner in ast.walk(outer):
                if inner is not outer:
                    enclosing[id(inner)] = outer.name  # innermost wins: ast.walk visits outer first

    def found(node: ast.AST, what: str) -> None:
        inside = f" (in {enclosing[id(node)]})" if id(node) in enclosing else ""
        findings.append(f"line {getattr(node, 'lineno', '?')}{inside}: {what}")

    forbidden = set(rule.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            if node.attr in forbidden:
                found(node, f"uses .{node.attr}")
            elif node.attr in DYNAMIC_ATTRS:
                found(node, f"uses .{node.attr}, which hides which function it reaches")
        elif isinstance(node, ast.Name):
            if node.id in DYNAMIC_NAMES:
                found(node, f"uses {node.id}, which hides which function it reaches")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
            for alias in node.names:
                full = alias.name if isinstance(node, ast.Import) else f"{module}.{alias.name}"
                top = (alias.name if isinstance(node, ast.Import) else module).split(".")[0]
                if top in rule.modules:
                    found(node, f"imports {full.strip('.')}")
                elif isinstance(node, ast.ImportFrom) and alias.name in forbidden:
                    found(node, f"imports {alias.name} from {module}")
                elif set(full.split(".")) & forbidden:  # import numpy.lib.arraypad as p
                    found(node, f"imports {full.strip('.')}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS:
            arg = node.args[1] if node.func.id == "getattr" and len(node.args) > 1 else None
            if node.func.id == "getattr" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if arg.value in forbidden:
                    found(node, f"reaches {arg.value} through getattr")
                continue
            found(node, f"calls {node.func.id}, which hides which function it reaches")
    return findings, _defined(tree), _global_uses(code)


def _global_uses(code: str) -> set[str]:
    """Names the cell reads from the notebook's global namespace (not parameters or locals)."""
    names: set[str] = set()
    try:
        table = symtable.symtable(code, "<cell>", "exec")
    except SyntaxError:
        return names

    def walk(t: symtable.SymbolTable) -> None:
        for sym in t.get_symbols():
            if sym.is_referenced() and (t.get_type() == "module" or sym.is_global() or sym.is_declared_global()):
                names.add(sym.get_name())
        for child in t.get_children():
            walk(child)

    walk(table)
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


def check(assembled: NotebookNode, assignment: str) -> dict[str, str]:
    """exercise -> why it breaks its own restriction, for an assembled notebook (see :mod:`.assemble`)."""
    rules = profile(assignment).restrictions
    if not rules:
        return {}
    cells = [(i, c) for i, c in enumerate(assembled.cells)
             if c.get("cell_type") == "code" and role(c) in (ANSWER, ADDED)]
    charged: dict[str, str] = {}
    for exercise, rule in rules.items():
        reports = []
        for index, cell in cells:
            findings, defines, uses = scan(cell.get("source", ""), rule)
            mine = exercise_of(cell) if role(cell) == ANSWER else None
            label = f"{mine}_code" if mine else f"added cell {index + 1}"
            reports.append(CellReport(label, mine, findings, defines, uses))
        reason = _charge(exercise, reports)
        if reason:
            charged[exercise] = reason
    return charged


def _charge(exercise: str, reports: list[CellReport]) -> str | None:
    """The first finding that reaches ``exercise``'s answer: in it, or in a cell it uses."""
    own = [r for r in reports if r.exercise == exercise]
    for r in own:
        if r.findings:
            return f"{r.label}: {r.findings[0]}"
    taint = {name: f"{r.label}: {r.findings[0]}" for r in reports if r.findings and r.exercise != exercise
             for name in r.defines}
    changed = True
    while changed:  # names defined with the help of tainted names are tainted too
        changed = False
        for r in reports:
            if r.exercise == exercise:
                continue
            hit = sorted(r.uses & set(taint))
            for name in r.defines - set(taint):
                if hit:
                    taint[name] = f"{r.label} (which uses {hit[0]}, from {taint[hit[0]]})"
                    changed = True
    for r in own:
        hit = sorted(r.uses & set(taint))
        if hit:
            return f"{r.label}: uses {hit[0]}, defined in {taint[hit[0]]}"
    return None


def explain(exercise: str, reason: str, assignment: str) -> str:
    rule = profile(assignment).restrictions[exercise]
    return (f"{exercise}: this exercise must be written without {rule.what} — {reason}. "
            f"{rule.advice[0].upper() + rule.advice[1:]}; so it scores 0.")
