"""The one thing still read from the student's code: a function an exercise itself forbids.

What a kernel may import is decided by its environment (:class:`.sandbox.KernelSite`): a NumPy-only
assignment's kernels have no torch or scipy at all. What an environment cannot express is "write
``pad2d`` without ``np.pad``" — numpy must be there, and ``np.pad`` with it, for the other exercises
of the same kernel (and a function hidden from inside the kernel is only hidden as long as the
student's code agrees). For those few exercises (:data:`autograder.profiles.PROFILES`,
``restrictions``) this module reads the code, without running it. The reading is sound or it
charges: every way of reaching a function is either resolved to a name and compared with the rule,
or charged as "cannot be checked".

**What is read.** The exercise's answer cell, and every cell whose names it uses, directly or
through other cells (a helper, a class, a module alias, an object another cell changed). A cell
"defines" the global names it binds (assignments, ``def``, imports; of the names a star import
brings in, which are the library's, only a forbidden one counts), the objects it changes in place (``table[k] = ...``, ``lst.append(...)``), and the attribute
names it stores (``np.alias = np.pad`` defines ``alias``, on whatever module or object: every
alias of it reads the same attribute). A cell "uses" the global names and attribute names it
reads. A cell that can change names it never spells (``exec``, ``importlib``, ``setattr`` with a
computed name, a write through ``globals()``, a change to ``sys.path``, ...) defines every name.
Instructor cells are read for these links only: their own code is never charged.

**What charges** the exercise, in any of those cells (the name compared is the rule's
:meth:`~autograder.profiles.Restriction.matches`):

* the forbidden name as an attribute (``np.pad``, ``n.lib.arraypad``), in an import (``from numpy
  import pad as q``, ``import numpy.lib.arraypad``), as a keyword (``requires_grad=True``), as a
  string constant that is the name or a dotted path to it (``'pad'``, ``'numpy.pad'``), as a bare
  name that no cell defines, or among the names a star import brings in (``from numpy import *``);
* what cannot be checked: ``getattr``/``setattr``/``delattr``, ``operator.attrgetter`` and
  ``methodcaller`` with a computed name, any other use of them (``p = getattr``); ``exec``,
  ``eval``, ``compile``, ``__import__``, ``importlib`` and the other modules that reach code by name
  (:data:`REFLECTIVE_MODULES`); ``globals()``, ``vars()``, ``locals()``, ``__dict__``,
  ``__globals__``, ``sys.modules``, frames; the kernels PyTorch keeps out of its Python API
  (``torch.ops``, ``torch._C``, ``torch._VF``: any private part of an imported module); a star
  import whose names cannot be listed; an import of a module the course's environment does not
  have (a file the notebook wrote: the kernel's working folder is not on its path, see
  :func:`.sandbox.kernel_env`, so a written file cannot pass for an installed module); a change to
  ``sys.path``; an IPython magic that runs code the cell does not show.

It never charges anything else: imports, prints, plots, helper functions, scratch cells and
``%timeit`` cost nothing, and a scratch cell that calls the forbidden function (to compare with it)
costs nothing unless the exercise's code uses what that cell defines. Cell roles come from
:mod:`.assemble`; Validate prints the same findings first.
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.machinery
import os
import re
import symtable
import sys
from dataclasses import dataclass, field

from nbformat.notebooknode import NotebookNode

from ..profiles import Restriction, profile
from .assemble import ADDED, ANSWER, TEST, exercise_of, role

ANY = "*"  # in ``defines``: the cell can change any name

# Functions that reach another by a name they are given: resolved when that name is a constant.
BY_NAME = {"getattr", "setattr", "delattr", "attrgetter", "methodcaller"}
# Builtins that run code, import, or read and write a namespace: never resolved.
DYNAMIC_CALLS = {"__import__", "exec", "eval", "compile", "globals", "vars", "locals", "breakpoint"}
# ... of which these can bind any name or attribute without spelling it.
WRITES_ANY = {"__import__", "exec", "eval", "compile", "breakpoint"}
# Modules whose purpose is to reach code by name (or to run code given as data); of each, only the
# uses in SAFE_USES are read as harmless (gc.collect(), types.SimpleNamespace, pickle.dump).
REFLECTIVE_MODULES = {"importlib", "builtins", "inspect", "gc", "ctypes", "pickle", "_pickle", "marshal", "copyreg",
                      "shelve", "dill", "cloudpickle", "joblib", "runpy", "code", "codeop", "pydoc", "pkgutil", "imp",
                      "zipimport", "types", "site", "sys"}
SAFE_USES = {"gc": {"collect", "disable", "enable", "isenabled", "get_count", "get_threshold", "set_threshold"},
             "types": {"SimpleNamespace", "MappingProxyType"},
             "inspect": {"signature", "isclass", "isfunction", "ismethod", "getdoc", "cleandoc", "Parameter"},
             "pickle": {"dump", "dumps", "HIGHEST_PROTOCOL", "DEFAULT_PROTOCOL", "PicklingError"},
             "joblib": {"dump", "Parallel", "delayed", "cpu_count"},
             "sys": {"version", "version_info", "platform", "stdout", "stderr", "argv", "executable", "maxsize",
                     "float_info", "getsizeof", "getrecursionlimit", "setrecursionlimit", "byteorder", "path",
                     "implementation", "exit", "flags", "int_info", "hexversion", "float_repr_style"}}
# Attributes that reach a namespace, a frame or code: never resolved.
DYNAMIC_ATTRS = {"__dict__", "__getattribute__", "__getattr__", "__globals__", "__builtins__", "__subclasses__",
                 "__self__", "__code__", "__loader__", "__spec__", "__import__", "import_module", "f_globals",
                 "f_locals", "f_builtins", "f_back", "tb_frame", "gi_frame", "cr_frame", "_getframe",
                 "exec", "getattr", "setattr", "delattr", "attrgetter", "methodcaller", "get_objects",
                 "get_referrers", "getmembers", "CompilationUnit", "load_inline", "get_field", "resolve_name",
                 "locate", "dictConfig"}
# Parts of a library whose functions are reached by name, or by a path the rule cannot see.
LIBRARY_PARTS = {"ops", "library", "overrides", "jit", "hub", "package", "cpp_extension", "f2py", "ctypeslib"}
# Methods that change the object they are called on.
MUTATORS = {"append", "extend", "insert", "update", "setdefault", "__setitem__", "add", "__setattr__"}
# Namespaces: a write into one binds the key as a name.
NAMESPACES = {"__dict__", "__globals__", "f_globals", "f_locals", "f_builtins", "modules"}
# Where imports look: a change there makes any import load code the notebook does not show.
IMPORT_PATHS = {"sys.path", "sys.meta_path", "sys.path_hooks", "sys.path_importer_cache"}
# Star imports are listed by importing the module in the grader: only for these packages.
LISTABLE = {"numpy", "torch", "torchvision", "math", "cmath", "itertools", "functools", "collections", "random",
            "statistics", "string", "os", "time", "typing", "dataclasses", "operator", "autograder"}

# Magics that change no Python name the reading could miss (an extension is an installed module:
# the kernel's working folder is not on its path).
SAFE_MAGICS = {"matplotlib", "config", "pip", "conda", "who", "whos", "who_ls", "pwd", "ls", "cd", "env", "precision",
               "pprint", "xmode", "history", "lsmagic", "magic", "autoreload", "load_ext", "reload_ext", "unload_ext",
               "reset", "reset_selective", "system", "sx", "alias", "autosave", "clear"}
SAFE_CELL_MAGICS = {"bash", "sh", "script", "html", "markdown", "latex", "svg", "javascript", "js", "writefile"}
TIMED_MAGICS = {"timeit", "time", "capture", "prun"}
_MAGIC_OPTIONS_WITH_VALUE = {"-n", "-r", "-p", "-o", "-l", "-s", "-T", "-D"}


@dataclass
class CellReport:
    label: str  # how a message names the cell: "pad2d_code" or "added cell 14"
    exercise: str | None  # the exercise this cell answers, None for an added or an instructor cell
    findings: list[str] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    uses: set[str] = field(default_factory=set)
    anything: str | None = None  # the first finding by which the cell can change any name
    names: dict[str, str] = field(default_factory=dict)  # forbidden names it binds (a star import) -> finding
    library: set[str] = field(default_factory=set)  # names only a star import binds: the library's, not the cell's


# ---------------------------------------------------------------------------------------------
# Cell source as Python
# ---------------------------------------------------------------------------------------------

def _code_after_options(rest: str) -> str:
    tokens = rest.split(" ")
    while tokens and (tokens[0].startswith("-") or tokens[0] == ""):
        tokens = tokens[2:] if tokens[0] in _MAGIC_OPTIONS_WITH_VALUE else tokens[1:]
    return " ".join(tokens)


def _unwrap_safe_magics(source: str) -> str:
    """The magics whose effect we know, as plain Python, line for line (so line numbers hold):
    ``%timeit -n 3 expr`` -> ``expr``; ``%%time`` -> its body; a shell line, ``%matplotlib inline``,
    a ``%%bash`` or ``%%writefile`` cell -> ``pass`` (they change no Python name; a file written
    and then imported is charged at the import). Any other magic stays, and is charged."""
    lines = source.splitlines()
    first = lines[0].lstrip() if lines else ""
    if first.startswith("%%"):
        name, _, rest = first[2:].partition(" ")
        if name in SAFE_CELL_MAGICS:
            return "pass" + "\n" * (len(lines) - 1)
        if name in TIMED_MAGICS:
            setup = _code_after_options(rest) if name == "timeit" else ""
            lines = [setup or "pass"] + lines[1:]
    out = []
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!") or (stripped.startswith("%") and not stripped.startswith("%%")
                                       and stripped[1:].split(" ")[0] in SAFE_MAGICS):
            out.append(indent + "pass")
            continue
        shell = re.match(r"([\w., ()\[\]]+?)\s*=\s*!", stripped)  # files = !ls: a list of the command's lines
        if shell:
            out.append(f"{indent}{shell.group(1)} = []")
            continue
        if stripped.startswith("%") and not stripped.startswith("%%"):
            name, _, rest = stripped[1:].partition(" ")
            if name in TIMED_MAGICS:
                out.append(indent + (_code_after_options(rest) or "pass"))
                continue
        out.append(line)
    return "\n".join(out)


def _ipython(source: str) -> str:
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return source
    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - odd input: read it as it is
        return source


def python_source(source: str) -> str:
    """Cell source as plain Python: the magics we know unwrapped, the others become the
    ``get_ipython()`` calls IPython runs (which are charged)."""
    return _ipython(_unwrap_safe_magics(source))


def _parse(source: str) -> tuple[ast.Module, str] | None:
    """The cell's syntax tree and code; None when neither our reading nor IPython's parses (the
    cell fails when it runs, so there is nothing to attribute)."""
    for code in (python_source(source), _ipython(source)):
        try:
            return ast.parse(code), code
        except (SyntaxError, ValueError):
            continue
    return None


# ---------------------------------------------------------------------------------------------
# The environment: which modules exist, what a star import brings in
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def installed(top: str) -> bool:
    """Is ``top`` a module the course's environment has (not a file next to the notebook)?"""
    if top in sys.builtin_module_names or top in sys.modules:
        return True
    here = {"", os.getcwd()}
    path = [p for p in sys.path if p not in here]
    for finder in (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter):
        if finder.find_spec(top) is not None:
            return True
    try:
        return importlib.machinery.PathFinder.find_spec(top, path) is not None
    except (ImportError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def star_names(module: str) -> dict[str, str] | None:
    """The names ``from module import *`` binds, each with what it is (``importlib`` for a module,
    ``torch.nn.functional.batch_norm`` for the rest), or None when they cannot be listed."""
    if module.split(".")[0] not in LISTABLE or any(p.startswith("_") for p in module.split(".")):
        return None
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001 - a module that does not import binds nothing, but we cannot say
        return None
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in dir(mod) if not n.startswith("_")]
    out = {}
    for name in map(str, names):
        value = getattr(mod, name, None)
        out[name] = value.__name__ if type(value).__name__ == "module" else f"{module}.{name}"
    return out


# ---------------------------------------------------------------------------------------------
# One cell
# ---------------------------------------------------------------------------------------------

def _root(node: ast.AST) -> ast.AST:
    """The expression an attribute, subscript or call chain starts from: ``np`` for ``np.lib.x[0]()``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call, ast.Starred)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def _dotted(node: ast.AST) -> str:
    """``torch.ops.aten`` for that attribute chain (``...`` for what is not a name)."""
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return f"{_dotted(node.func)}(...)"
    if isinstance(node, ast.Subscript):
        return f"{_dotted(node.value)}[...]"
    return "..."


def _const_str(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_namespace(node: ast.AST) -> bool:
    """Is ``node`` a namespace a subscript store binds names in (``np.__dict__``, ``globals()``)?"""
    if isinstance(node, ast.Attribute):
        return node.attr in NAMESPACES
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("globals", "vars", "locals")


def _changed(target: ast.AST) -> set[str]:
    """What a store into ``target`` (a subscript's or a mutator's object) changes: the namespace
    key, the last attribute of the chain, or the global name at its root."""
    if _is_namespace(target):
        return {ANY}
    if isinstance(target, ast.Attribute):
        return {target.attr}
    root = _root(target)
    return {root.id} if isinstance(root, ast.Name) else set()


def _named_in_string(text: str, rule: Restriction) -> str | None:
    """The forbidden name a string spells: the whole string, or a part of a dotted path."""
    text = text.strip()
    if text.isidentifier():
        return text if rule.matches(text) else None
    if re.fullmatch(r"[\w.:]+", text) and re.search(r"[.:]", text):
        return next((p for p in re.split(r"[.:]", text) if p and rule.matches(p)), None)
    return None


def _path(node: ast.AST, modules: dict[str, str], through_calls: bool = True) -> str | None:
    """What an expression is, as a dotted path from a module, when it starts from one:
    ``numpy.lib.pad`` for ``n.lib.pad`` after ``import numpy as n``; ``sys.modules.?`` for
    ``sys.modules[name]`` (only ``through_calls``: a call's or a subscript's value is marked ``?``);
    None for anything else."""
    if isinstance(node, ast.Name):
        return modules.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _path(node.value, modules, through_calls)
        return f"{base}.{node.attr}" if base else None
    if through_calls and isinstance(node, (ast.Subscript, ast.Call)):
        base = _path(node.func if isinstance(node, ast.Call) else node.value, modules)
        return f"{base}.?" if base else None
    return None


def _reflective(path: str) -> bool:
    """Does ``path`` (``gc.get_objects``) reach code by name, rather than a harmless use of its module?"""
    parts = path.split(".")
    return parts[0] in REFLECTIVE_MODULES and (len(parts) < 2 or parts[1] not in SAFE_USES.get(parts[0], ()))


def _part(path: str) -> str:
    """How a message names what ``_outside`` found: "a private part of torch", "which reaches functions by name"."""
    top, *rest = path.split(".?")[0].split(".")
    return f"a private part of {top}" if any(p.startswith("_") for p in rest) else f"a way into {top}'s functions by name"


def _outside(path: str) -> bool:
    """Does ``path`` go through a private part of its library (``torch._C``, ``torch._VF``,
    ``numpy._core``) or one that reaches kernels by name (``torch.ops``, ``torch.library``)?"""
    on_modules = path.split(".?")[0].split(".")[1:]  # what a call returns is the student's object
    return any(p.startswith("_") and not p.startswith("__") or p in LIBRARY_PARTS for p in on_modules)


# Of the reflective modules, those that can run or import code (and so bind any name).
RUNS_CODE = REFLECTIVE_MODULES - {"gc", "inspect", "sys", "copyreg"}


class _Reader(ast.NodeVisitor):
    """Findings, definitions and uses of one cell's code against one rule."""

    def __init__(self, rule: Restriction, modules: dict[str, str], bound: set[str], global_reads: set[str]):
        self.rule, self.modules, self.bound, self.global_reads = rule, modules, bound, global_reads
        self.findings: list[str] = []
        self.defines: set[str] = set()
        self.uses: set[str] = set()
        self.where: list[str] = []  # the enclosing functions and classes
        self.skip: set[int] = set()  # ids of nodes already read as part of their parent
        self.anything: str | None = None  # the first finding by which the cell can change any name
        self.names: dict[str, str] = {}  # a forbidden name a star import binds -> the finding
        self.library: set[str] = set()  # names a star import binds

    # -- reporting ------------------------------------------------------------------------------
    def found(self, node: ast.AST, what: str) -> None:
        inside = f" (in {self.where[-1]})" if self.where else ""
        self.findings.append(f"line {getattr(node, 'lineno', '?')}{inside}: {what}")

    def unknown(self, node: ast.AST, what: str, writes_any: bool = False) -> None:
        self.found(node, f"{what}, so which function it reaches cannot be checked")
        if writes_any:
            self.defines.add(ANY)
            self.anything = self.anything or self.findings[-1]

    def builtin(self, node: ast.Name) -> bool:
        """Is this name the builtin of that name (no cell binds it)?"""
        return node.id not in self.bound and hasattr(builtins, node.id)

    def function(self, func: ast.AST) -> str | None:
        """The reflective function a call's ``func`` is: a builtin (``getattr``), or operator's
        (``attrgetter``) under any alias."""
        if isinstance(func, ast.Name) and self.builtin(func):
            return func.id
        path = _path(func, self.modules, through_calls=False)
        return path.rsplit(".", 1)[-1] if path and path.split(".")[0] in ("operator", "_operator") else None

    # -- scopes ----------------------------------------------------------------------------------
    def _scope(self, node: ast.AST) -> None:
        self.where.append(node.name)
        self.generic_visit(node)
        self.where.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scope

    def visit_Module(self, node: ast.Module) -> None:
        for sub in ast.walk(node):
            body = getattr(sub, "body", None)
            if isinstance(body, list):  # a docstring or a bare string statement is text, not a value
                self.skip |= {id(s.value) for s in body if isinstance(s, ast.Expr) and _const_str(s.value) is not None}
            if isinstance(sub, ast.JoinedStr):  # so is an f-string's text
                self.skip |= {id(v) for v in sub.values if isinstance(v, ast.Constant)}
        self.generic_visit(node)

    # -- names -----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if not isinstance(node.ctx, ast.Load) or id(node) in self.skip:
            return
        path = self.modules.get(name)
        path = path if path and "?" not in path else None
        what = self.function(node)
        if what in BY_NAME:
            self.unknown(node, f"uses {name} other than as {what}(object, 'name')", writes_any=what == "setattr")
        elif what in DYNAMIC_CALLS:
            self.unknown(node, f"uses {name}", writes_any=what in WRITES_ANY)
        elif name in ("__builtins__", "get_ipython") and name not in self.bound:
            self.unknown(node, f"uses {name}", writes_any=True)
        elif path and _reflective(path):
            self.unknown(node, f"uses {path}", writes_any=path.split(".")[0] in RUNS_CODE)
        elif self.rule.matches(name) and name in self.global_reads and name not in self.bound and not path:
            self.found(node, f"uses {name}, which no cell defines")

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) in self.skip or not isinstance(node.value, str):
            return
        named = _named_in_string(node.value, self.rule)
        if named:
            self.found(node, f"names {named} in the string {node.value.strip()[:60]!r}")

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg and self.rule.matches(node.arg):
            self.found(node.value, f"passes {node.arg}=")
        if (node.arg, getattr(node.value, "value", None)) in (("weights_only", False), ("allow_pickle", True)):
            self.unknown(node.value, f"passes {node.arg}={node.value.value} (unpickling calls functions by name)",
                         writes_any=True)
        self.visit(node.value)

    # -- attributes ------------------------------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        (self.uses if isinstance(node.ctx, ast.Load) else self.defines).add(attr)
        if id(node) in self.skip:  # read as a call by name: getattr is resolved there
            self.generic_visit(node)
            return
        path = _path(node, self.modules)
        parts = path.split(".") if path else []
        inner = _path(node.value, self.modules) if not isinstance(node.value, ast.Name) else None
        if isinstance(node.value, ast.Name) and path:
            self.skip.add(id(node.value))  # a module as the base of an attribute is read here
        if self.rule.matches(attr):
            self.found(node, f"uses .{attr}")
        elif path and _reflective(path):
            if not (inner and _reflective(inner)):  # charged once, where the chain becomes reflective
                self.unknown(node, f"uses {path}", writes_any=parts[0] in RUNS_CODE)
        elif attr == "__class__" and not isinstance(node.ctx, ast.Load):  # a module given a class of one's own
            self.unknown(node, "sets .__class__", writes_any=True)
        elif attr in DYNAMIC_ATTRS:
            self.unknown(node, f"uses .{attr}", writes_any=attr in ("exec", "__import__", "import_module", "__code__"))
        elif path and _outside(path) and not (inner and _outside(inner)):
            self.unknown(node, f"uses {_dotted(node)}, {_part(path)}")
        self.generic_visit(node)

    # -- stores ----------------------------------------------------------------------------------
    def _import_path(self, node: ast.AST, target: ast.AST) -> None:
        """Charge a change to sys.path (or another place imports look)."""
        path = _path(target, self.modules, through_calls=False)
        if path in IMPORT_PATHS:
            self.found(node, f"changes {path}, so which module an import loads cannot be checked")
            self.defines.add(ANY)
            self.anything = self.anything or self.findings[-1]

    def _store(self, target: ast.AST) -> None:
        self._import_path(target, target.value if isinstance(target, ast.Subscript) else target)
        if isinstance(target, ast.Subscript):
            if _is_namespace(target.value):
                key = _const_str(target.slice)
                self.defines.add(key if key is not None else ANY)
            else:
                self.defines |= _changed(target.value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._store(element)
        elif isinstance(target, ast.Starred):
            self._store(target.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._store(target)
            if isinstance(target, ast.Name) and target.id == "__match_args__" and not all(
                    _const_str(e) is not None for e in getattr(node.value, "elts", [None])):
                self.unknown(node, "sets __match_args__ to computed names")  # case C(f) reads them by name
        self.generic_visit(node)

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        """``case object(pad=f)`` reads the attribute ``pad`` of the subject."""
        for attr in node.kwd_attrs:
            self.uses.add(attr)
            if self.rule.matches(attr):
                self.found(node, f"reaches {attr} through a match pattern")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._store(node.target)
        self.generic_visit(node)

    visit_AnnAssign = visit_AugAssign

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._store(target)
        self.generic_visit(node)

    # -- calls -----------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = self.function(func)
        if name in BY_NAME:
            self.skip.add(id(func))
            self._by_name(node, name)
        elif name in DYNAMIC_CALLS:
            self.skip.add(id(func))
            self.unknown(node, f"calls {name}", writes_any=name in WRITES_ANY)
        elif isinstance(func, ast.Attribute) and func.attr in MUTATORS | {"remove", "pop", "clear", "reverse"}:
            self._import_path(node, func.value)
            if _is_namespace(func.value):
                key = _const_str(node.args[0]) if func.attr == "setdefault" and node.args else None
                self.defines.add(key if key is not None else ANY)
            else:
                self.defines |= _changed(func.value)
        self.generic_visit(node)

    def _by_name(self, node: ast.Call, name: str) -> None:
        """getattr(x, 'name'), setattr(x, 'name', v), attrgetter('a.b'), methodcaller('name'):
        resolved when the name is a constant, charged otherwise."""
        args = node.args
        if name in ("getattr", "setattr", "delattr"):
            names = [_const_str(args[1])] if len(args) > 1 else [None]
        elif name == "attrgetter":
            names = [_const_str(a) for a in args] or [None]
        else:
            names = [_const_str(args[0])] if args else [None]
        if any(n is None for n in names) or any(isinstance(a, ast.Starred) for a in args):
            self.unknown(node, f"calls {name} with a computed name", writes_any=name == "setattr")
            return
        for dotted in names:
            for part in dotted.split("."):
                if self.rule.matches(part):
                    self.found(node, f"reaches {part} through {name}")
                elif part in DYNAMIC_ATTRS or part in DYNAMIC_CALLS or part in BY_NAME or part in REFLECTIVE_MODULES:
                    self.unknown(node, f"reaches {part} through {name}", writes_any=True)
                elif name in ("getattr", "setattr") and args and _path(args[0], self.modules) and \
                        _outside(f"{_path(args[0], self.modules)}.{part}"):
                    self.unknown(node, f"reaches {part} of {_path(args[0], self.modules)} through {name}, "
                                 f"{_part(_path(args[0], self.modules) + '.' + part)}")
                (self.defines if name in ("setattr", "delattr") else self.uses).add(part)
        self.skip |= {id(a) for a in args if _const_str(a) is not None}

    # -- imports ---------------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._imported(node, alias.name, None)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        for alias in node.names:
            self._imported(node, module, alias.name)

    def _imported(self, node: ast.AST, module: str, name: str | None) -> None:
        parts = [p for p in module.split(".") if p] + ([name] if name and name != "*" else [])
        full = ".".join(parts)
        top = parts[0] if parts else ""
        self.uses.add(top)
        star = star_names(module) if name == "*" and installed(top) else None
        if name == "*" and star is not None:
            self.library |= set(star)  # what they are is in the notebook's aliases: their uses are read
            for hit in sorted(n for n in star if self.rule.matches(n)):
                self.names.setdefault(hit, f"line {node.lineno}: imports * from {module}, which brings in {hit}")
        if top in self.rule.modules:
            self.found(node, f"imports {full}")
        elif name and name != "*" and self.rule.matches(name):
            self.found(node, f"imports {name} from {module}")
        elif any(self.rule.matches(p) for p in parts):
            self.found(node, f"imports {full}")
        elif module.startswith(".") or not installed(top):
            self.unknown(node, f"imports {full or module}, a module the course's environment does not have "
                         "(what it runs is not in the notebook)", writes_any=True)
        elif _reflective(full) and (name or len(parts) > 1):  # import gc alone is harmless; its uses are read
            self.unknown(node, f"imports {'* from ' if name == '*' else ''}{full}", writes_any=top in RUNS_CODE)
        elif _outside(full) or top.startswith("_"):
            self.unknown(node, f"imports {full}, {_part(full) if not top.startswith('_') else 'a private module'}")
        elif name == "*" and star is None:
            self.unknown(node, f"imports * from {module}, whose names cannot be listed", writes_any=True)


def _symbols(code: str) -> tuple[set[str], set[str]]:
    """(names the cell reads from the notebook's global namespace, names it binds there)."""
    reads: set[str] = set()
    binds: set[str] = set()
    try:
        table = symtable.symtable(code, "<cell>", "exec")
    except SyntaxError:
        return reads, binds

    def walk(t: symtable.SymbolTable) -> None:
        module = t.get_type() == "module"
        for sym in t.get_symbols():
            in_globals = module or sym.is_global() or sym.is_declared_global()
            if sym.is_referenced() and in_globals:
                reads.add(sym.get_name())
            if (module or sym.is_declared_global()) and (sym.is_assigned() or sym.is_imported()
                                                         or sym.is_namespace()):
                binds.add(sym.get_name())
        for child in t.get_children():
            walk(child)

    walk(table)
    return reads, binds


@dataclass
class _Cell:
    index: int
    label: str
    exercise: str | None
    instructor: bool
    parsed: tuple[ast.Module, str] | None
    reads: set[str]
    binds: set[str]


def _cells(assembled: NotebookNode) -> list[_Cell]:
    cells = []
    for index, cell in enumerate(assembled.cells):
        if cell.get("cell_type") != "code" or role(cell) == TEST:
            continue
        kind = role(cell)
        mine = exercise_of(cell) if kind == ANSWER else None
        parsed = _parse(cell.get("source", ""))
        reads, binds = _symbols(parsed[1]) if parsed else (set(), set())
        label = f"{mine}_code" if mine else f"added cell {index + 1}" if kind == ADDED else f"cell {index + 1}"
        cells.append(_Cell(index, label, mine, kind not in (ANSWER, ADDED), parsed, reads, binds))
    return cells


def _modules(cells: list[_Cell]) -> dict[str, str]:
    """Names that stand for a module, or for something in one, anywhere in the notebook, and what
    they stand for: ``np`` -> ``numpy`` after ``import numpy as np``, ``q`` -> ``numpy.pad`` after
    ``from numpy import pad as q``, ``m`` -> ``sys.modules.?`` after ``m = sys.modules[name]``."""
    modules: dict[str, str] = {}
    trees = [c.parsed[0] for c in cells if c.parsed]
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    modules.setdefault(a.asname or a.name.split(".")[0], a.name if a.asname else a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and not node.level:
                for a in node.names:
                    if a.name != "*":
                        modules.setdefault(a.asname or a.name, f"{node.module}.{a.name}")
                    elif installed(node.module.split(".")[0]):
                        for name, path in (star_names(node.module) or {}).items():
                            modules.setdefault(name, path)
    changed = True
    while changed:
        changed = False
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, (ast.Assign, ast.NamedExpr)):
                    path = _path(node.value, modules, through_calls=False)
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    for t in targets:
                        if path and isinstance(t, ast.Name) and t.id not in modules:
                            modules[t.id] = path
                            changed = True
    return modules


def read(cell: _Cell, rule: Restriction, modules: dict[str, str], bound: set[str]) -> CellReport:
    report = CellReport(cell.label, cell.exercise)
    if cell.parsed is None:
        return report  # such a cell fails when it runs; there is nothing to attribute
    reader = _Reader(rule, modules, bound, cell.reads)
    reader.visit(cell.parsed[0])
    report.defines = cell.binds | reader.defines | reader.library
    report.library = reader.library - cell.binds - reader.defines
    report.uses = cell.reads | reader.uses
    if cell.instructor:  # the instructor's code links names; it is never charged
        report.defines.discard(ANY)
    else:
        report.findings, report.anything, report.names = reader.findings, reader.anything, reader.names
    return report


def scan(source: str, rule: Restriction) -> list[str]:
    """The findings against ``rule`` in one piece of code, read on its own."""
    parsed = _parse(source)
    reads, binds = _symbols(parsed[1]) if parsed else (set(), set())
    cell = _Cell(0, "cell", None, False, parsed, reads, binds)
    return read(cell, rule, _modules([cell]), binds).findings


def check(assembled: NotebookNode, assignment: str) -> dict[str, str]:
    """exercise -> why it breaks its own restriction, for an assembled notebook (see :mod:`.assemble`)."""
    rules = profile(assignment).restrictions
    if not rules:
        return {}
    cells = _cells(assembled)
    modules = _modules(cells)
    bound = {n for c in cells for n in c.binds}
    charged: dict[str, str] = {}
    for exercise, rule in rules.items():
        reports = [read(cell, rule, modules, bound) for cell in cells]
        reason = _charge(exercise, reports)
        if reason:
            charged[exercise] = reason
    return charged


def _charge(exercise: str, reports: list[CellReport]) -> str | None:
    """The first finding that reaches ``exercise``'s answer: in it, in a cell it uses (directly or
    through other cells), or in a cell that can change any name."""
    own = [r for r in reports if r.exercise == exercise]
    for r in own:
        if r.findings or r.names:
            return f"{r.label}: {(r.findings or list(r.names.values()))[0]}"
    others = [r for r in reports if r.exercise != exercise]
    for r in others:
        if r.findings and ANY in r.defines and own:
            return (f"{own[0].label}: uses names that {r.label} can change without naming them "
                    f"({r.label}: {r.anything or r.findings[0]})")
    # a cell's findings taint what it defines; not what a star import binds there (the library's values)
    taint = {name: f"{r.label}: {r.findings[0]}" for r in others if r.findings for name in r.defines - r.library}
    for r in others:  # a star import taints only the forbidden names it brings in
        taint.update({name: f"{r.label}: {why}" for name, why in r.names.items() if name not in taint})
    changed = True
    while changed:  # names defined with the help of tainted names are tainted too
        changed = False
        for r in others:
            hit = sorted(r.uses & set(taint))
            for name in r.defines - r.library - set(taint):
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
