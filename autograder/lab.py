"""The course in JupyterLab: the toolbar's *Validate* runs the course's own validation.

nbgrader's labextension posts the notebook's path to ``/assignments/validate`` and shows what
comes back. This Jupyter server extension (enabled by ``jupyter-config/…/autograder.json``, which
``pip install`` puts into the environment) answers that request with
:func:`autograder.grading.validate.run` — the grader's own path: the same assembly, sandboxed
kernel, judge and restrictions, on the visible tests — instead of nbgrader's plain validator, so
the dialog says what the grade will say: the total on the visible tests, what the hidden tests add,
how long it took, then each failing exercise with its points and the check's whole message (what
was expected, what came, where, what to look at).

The button, its "Validating..." label and the dialog are nbgrader's labextension's; the server
answers once, at the end. The course's own small labextension, ``convnets-validate``
(``jupyter-config/labextensions/``, installed by :func:`install`), adds what nbgrader's lacks: the
seconds on the button while it runs ("Validating… 12 s") and "Validate Assignment" in the command
palette (it presses the current notebook's button).
"""

from __future__ import annotations

import html
import time
import traceback
from pathlib import Path


# nbgrader's dialog (its labextension's ``validate``) puts each ``failed`` entry under "The following cell
# failed:", its ``source`` as text and its ``error`` as HTML, in <pre> elements that do not wrap. The
# course answers with one entry: ``source`` the summary, ``error`` this style and the whole report. The
# style shows the report alone (not nbgrader's header, not the summary it repeats) and lets its lines
# wrap at the dialog's width; a dialog that ignored it would still read: the header once, the summary,
# the report.
DIALOG_STYLE = ("<style>#validation-message.validation-failed > div:not(:last-child) {display: none}"
                " #validation-message pre {white-space: pre-wrap}</style>")
DIALOG_WIDTH = 76
KNOWN_DIALOG = "0.9."  # the nbgrader versions whose dialog is as described (the labextension is nbgrader's own)


def validate_json(path: Path) -> dict:
    """The answer nbgrader's Validate dialog expects: one ``failed`` entry holding the whole report —
    the total on the visible tests, what the hidden ones add, how long it took, then each failing
    exercise with its points and whole message (wrapped), the notes — also when every test passes
    (its first words are then "Success!"); ``success: False`` with one line when the notebook
    cannot be read or is none of the course's."""
    from .grading.notebooks import Unreadable
    from .grading.validate import HIDDEN, NoRelease, failure_block, listing, run, took, total_line, wrap

    start = time.monotonic()
    try:
        outcomes, notes = run(path)
    except (Unreadable, NoRelease) as exc:
        return {"success": False, "value": str(exc)}
    seconds = time.monotonic() - start
    failed = [o for o in outcomes if not o.passed]
    if not failed and not _knows_dialog():
        return {"success": True, "value": {}}  # nbgrader's own "Success! Your notebook passes all the tests."
    total = total_line(outcomes)
    if not failed:
        total = "Success! Your notebook passes all the " + total.replace("; all passed", "")
    summary = [*wrap(total, "", DIALOG_WIDTH, ""), *wrap(HIDDEN, "", DIALOG_WIDTH, ""), f"Validated in {took(seconds)}."]
    body = [f"<b>{html.escape(summary[0])}</b>", *map(html.escape, summary[1:])]
    for o in failed:
        head, *message = failure_block(o, width=DIALOG_WIDTH)
        body += ["", f"<b>{html.escape(head)}</b>", *map(html.escape, message)]  # the dialog sets it as innerHTML
    if failed and len(failed) < len(outcomes):
        passed = [o.exercise for o in outcomes if o.passed]
        body += ["", *map(html.escape, listing("passed:", passed, "", DIALOG_WIDTH))]
    if notes:
        body += ["", "What the grader did with your notebook:",
                 *(html.escape(line) for note in notes for line in wrap(note, "  ", DIALOG_WIDTH))]
    return {"success": True, "value": {"failed": [{"source": "\n".join(summary),
                                                   "error": DIALOG_STYLE + "\n".join(body)}]}}


def _knows_dialog() -> bool:
    try:
        from nbgrader import __version__
    except ImportError:
        return False
    return __version__.startswith(KNOWN_DIALOG)


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "autograder.lab"}]


def _load_jupyter_server_extension(serverapp) -> None:
    """Make nbgrader's Validate handler answer with :func:`validate_json`."""
    try:
        from nbgrader.server_extensions.validate_assignment import handlers
    except ImportError:  # nbgrader is not installed: there is no Validate button to serve
        serverapp.log.info("autograder.lab: nbgrader's validate extension is not installed; nothing to do")
        return
    from tornado import web

    def validate_notebook(self, path: str) -> dict:
        root = Path(self.root_dir).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise web.HTTPError(403, "Access denied: path outside allowed directory")
        try:
            return validate_json(target)
        except Exception:  # noqa: BLE001 - the dialog shows one line; the server log keeps the rest
            self.log.error(traceback.format_exc())
            return {"success": False, "value": "Validate could not run; the server log says why."}

    handlers.ValidateAssignmentHandler.validate_notebook = validate_notebook
    serverapp.log.info("autograder.lab: Validate runs the course's own validation")


load_jupyter_server_extension = _load_jupyter_server_extension  # the older entry point's name


LABEXTENSION = "convnets-validate"  # Validate in the command palette, and its seconds on the button


def install(prefix: str | None = None) -> Path:
    """Enable this extension for the Jupyter of environment ``prefix`` (default: this one), and put
    the labextension ``convnets-validate`` (``jupyter-config/labextensions/``) where JupyterLab finds
    it. A wheel install does both by itself; an editable install (``pip install -e .``, what ``make``
    does) does not."""
    import json
    import shutil
    import sys

    prefix = prefix or sys.prefix
    path = Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "autograder.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"autograder.lab": True}}}, indent=2) + "\n")
    source = Path(__file__).resolve().parents[1] / "jupyter-config" / "labextensions" / LABEXTENSION
    if source.is_dir():  # a checkout (a wheel has put it in place already)
        target = Path(prefix) / "share" / "jupyter" / "labextensions" / LABEXTENSION
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    return path


if __name__ == "__main__":
    print(f"enabled autograder.lab in {install()} and the labextension {LABEXTENSION}")
