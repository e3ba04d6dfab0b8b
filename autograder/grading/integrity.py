"""The integrity rule, for every assignment: student code may compute, not rewrite the grader.

Test cells run in the same kernel as the student's code, so code that changed numpy, torch, the
builtins or the ``autograder`` checks, or that returned objects lying about equality, could make a
failing test pass. Such code needs one of a short list of doors: importing the interpreter's or the
grader's machinery, reaching namespaces (``globals``, ``vars``, ``__dict__``, ``__builtins__``),
assigning to an attribute of something the student did not make (``np.allclose = …``), defining
operators (``__eq__``, ``__array_ufunc__``, ``__torch_function__``), or building code at run time.
This module reads the student's cells (never running them) and finds those doors. One found
anywhere costs every test of the notebook, because a patch reaches every test; Validate shows the
same finding, with its line, before anything is handed in.
"""

from __future__ import annotations

import ast

from nbformat.notebooknode import NotebookNode

from .notebooks import nbgrader_meta
from .numpy_only import ALLOWED_DUNDERS, _python

# Modules that reach the interpreter, the files, other processes or the grader.
MODULES = {
    "autograder", "builtins", "sys", "os", "posix", "gc", "inspect", "ctypes", "cffi", "importlib", "imp",
    "pkgutil", "zipimport", "runpy", "site", "sysconfig", "subprocess", "pty", "signal", "resource", "socket",
    "ssl", "urllib", "http", "requests", "shutil", "pathlib", "glob", "tempfile", "io", "mmap", "fcntl",
    "pickle", "dill", "cloudpickle", "marshal", "shelve", "copyreg", "types", "code", "codeop", "dis", "ast",
    "traceback", "linecache", "atexit", "faulthandler", "tracemalloc", "threading", "_thread",
    "multiprocessing", "concurrent", "asyncio", "weakref", "unittest", "IPython", "ipykernel",
    "jupyter_client", "nbformat", "nbgrader", "platform", "getpass", "pwd",
}
# Names that reach namespaces, build code, or are the grader's own.
NAMES = {
    "__import__", "__builtins__", "builtins", "globals", "locals", "vars", "exec", "eval", "compile",
    "open", "breakpoint", "input", "get_ipython", "__loader__", "__spec__", "autograder", "suite", "checks",
    "delattr",
}
# Dunder attributes a computation needs (the NumPy-only rule's list); every other one is a door
# into an object's machinery.
DUNDER_ATTRIBUTES = ALLOWED_DUNDERS
# Special methods a student class may define; comparison, arithmetic, array and torch protocols
# (which could make a result claim to equal anything) are not among them.
DUNDER_METHODS = {"__init__", "__call__", "__len__", "__getitem__", "__iter__", "__next__", "__repr__", "__str__"}
ATTRIBUTES = {"ctypes", "ctypeslib", "sys", "os", "builtins", "f_globals", "f_locals", "f_back", "gi_frame", "tb_frame"}


def scan(source: str) -> list[str]:
    """The doors found in one cell's code, one line each ('line N: what')."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []  # such a cell fails when it runs; nothing it defines reaches the tests
    findings: list[str] = []

    def found(node: ast.AST, what: str) -> None:
        findings.append(f"line {getattr(node, 'lineno', '?')}: {what}")

    bound, imported = _bindings(tree)
    self_calls: set[int] = set()  # setattr(self, ...) in a module's __init__ is how layers get names
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "getattr"):
            target = node.args[0] if node.args else None
            name = node.args[1] if len(node.args) > 1 else None
            special = isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("__")
            if node.func.id == "getattr" and not special:
                self_calls.add(id(node.func))
            elif isinstance(target, ast.Name) and target.id == "self" and not special:
                self_calls.add(id(node.func))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in MODULES:
                    found(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level or (node.module or "").split(".")[0] in MODULES:
                found(node, f"imports from {'.' * node.level}{node.module or ''}")
        elif isinstance(node, ast.Name):
            if node.id in NAMES:
                found(node, f"uses {node.id}")
            elif node.id in ("setattr", "getattr") and id(node) not in self_calls:
                found(node, f"uses {node.id} on something other than self")
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__") and node.attr.endswith("__") and node.attr not in DUNDER_ATTRIBUTES:
                found(node, f"uses the attribute {node.attr}")
            elif node.attr in ATTRIBUTES:
                found(node, f"uses the attribute .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name.startswith("__") and node.name.endswith("__") and node.name not in DUNDER_METHODS:
                found(node, f"defines {node.name}, which could make a result claim to be what it is not")
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in _flat(targets):
                if not isinstance(target, (ast.Attribute, ast.Subscript)):
                    continue
                root = _root(target)
                if root is None or root in imported or root not in bound:
                    owner = f"belongs to {root}" if root else "hangs from a call's result"
                    found(node, f"changes {ast.unparse(target)}, which {owner} (not made by this code)")
    return list(dict.fromkeys(findings))


def _flat(targets: list[ast.AST]) -> list[ast.AST]:
    """Assignment targets with tuples and lists unpacked (``a.x, b[0] = …``)."""
    out = []
    for t in targets:
        out += _flat(list(t.elts)) if isinstance(t, (ast.Tuple, ast.List)) else [t.value] if isinstance(t, ast.Starred) else [t]
    return out


def _root(node: ast.AST) -> str | None:
    """The name an attribute/subscript chain hangs from; None when it hangs from a call or an
    expression (``f().x = …``), which is treated as foreign."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _bindings(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names this code binds, names it binds by importing)."""
    bound, imported = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                imported.add((alias.asname or alias.name).split(".")[0])
    # An alias of something foreign is foreign: ``F = torch.nn.functional`` then ``F.conv2d = …``.
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            if any(isinstance(sub, (ast.Call, ast.Lambda)) for sub in ast.walk(node.value)):
                continue  # a computed value is the code's own
            names = {sub.id for sub in ast.walk(node.value) if isinstance(sub, ast.Name)}
            if any(n in imported or n not in bound for n in names):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in _flat(targets):
                    if isinstance(t, ast.Name) and t.id not in imported:
                        imported.add(t.id)
                        changed = True
    return bound, imported


def check_notebook(submitted: NotebookNode, source: NotebookNode) -> str | None:
    """The first door found in the student's own cells ('<cell>: line N: what'), or None.

    The instructor's cells are skipped: the grader runs the instructor's copy of them anyway.
    """
    from .assemble import visible

    instructor = {nbgrader_meta(c).get("grade_id") for c in source.cells if not nbgrader_meta(c).get("solution")}
    instructor.discard(None)
    theirs = [c for c in source.cells if nbgrader_meta(c).get("grade_id") and not nbgrader_meta(c).get("solution")]
    provided = {c.source.strip() for c in theirs} | {visible(c.source) for c in theirs}
    all_findings = []
    for index, cell in enumerate(submitted.cells):
        if cell.get("cell_type") != "code":
            continue
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if gid in instructor and not meta.get("solution"):
            continue
        if cell.get("source", "").strip() in provided:  # the instructor's code, metadata stripped
            continue
        for finding in scan(cell.get("source", "")):
            all_findings.append(f"{gid or f'cell {index + 1}'}: {finding}")
    return all_findings[0] if all_findings else None


def explain(finding: str) -> str:
    return (f"integrity rule — {finding}. Code that imports the interpreter's or the grader's machinery, "
            "changes modules it did not make, reaches namespaces or defines comparison operators is not "
            "allowed: it could change what the tests see, so every test of this notebook scores 0.")
