"""The course in JupyterLab: the toolbar's *Validate* runs the course's own validation.

nbgrader's labextension posts the notebook's path to ``/assignments/validate`` and shows what
comes back. This Jupyter server extension (enabled by ``jupyter-config/…/autograder.json``, which
``pip install`` puts into the environment) answers that request with
:func:`autograder.grading.validate.run` — the grader's own path: the same assembly, sandboxed
kernel, judge and restrictions, on the visible tests — instead of nbgrader's plain validator, so
the dialog says what the grade will say. Each failing exercise is one entry, with the check's
message first (what was expected, what came, where, what to look at).
"""

from __future__ import annotations

import html
import traceback
from pathlib import Path


def validate_json(path: Path) -> dict:
    """The answer nbgrader's Validate dialog expects: ``{"success": True, "value": {}}`` when every
    visible test passes (it says "Success! Your notebook passes all the tests."), else a ``failed``
    entry per exercise; ``success: False`` with one line when the notebook cannot be read."""
    from .grading.notebooks import Unreadable
    from .grading.validate import NoRelease, run

    try:
        outcomes, notes = run(path)
    except (Unreadable, NoRelease) as exc:
        return {"success": False, "value": str(exc)}
    failed = [o for o in outcomes if not o.passed]
    if not failed:
        return {"success": True, "value": {}}
    entries = []
    for o in failed:
        entries.append({"source": f"{o.exercise} ({o.points:g} point{'s' if o.points != 1 else ''})",
                        "error": html.escape(o.message or "failed")})  # the dialog sets it as innerHTML
    if notes:
        entries.append({"source": "what the grader did with your notebook",
                        "error": html.escape("\n".join(notes))})
    return {"success": True, "value": {"failed": entries}}


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


def install(prefix: str | None = None) -> Path:
    """Enable this extension for the Jupyter of environment ``prefix`` (default: this one). A wheel
    install does it by itself; an editable install (``pip install -e .``, what ``make`` does) does not."""
    import json
    import sys

    path = Path(prefix or sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "autograder.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ServerApp": {"jpserver_extensions": {"autograder.lab": True}}}, indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(f"enabled autograder.lab in {install()}")
