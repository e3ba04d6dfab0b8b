"""What a student (and an instructor) reads after grading: the graded notebook and its HTML.

The autograded notebook opens with a *grading report* (the score, every lost point and why, what
the grader did with the notebook). Its test cells show the visible test code only — never the
hidden tests, their seeds, or the grader's source and paths — and, as output, the judge's verdict:
what the test printed, or the message of the check that failed (what was expected, what came,
where, what to look at).

Everything that came from the student — their code's outputs, their markdown, the text of their
exceptions — is made safe to open before the page is rendered: outputs keep only plain text and
valid PNG images, their markdown cells become literal text, messages are escaped; nbconvert
escapes code, text and tracebacks itself. So no student HTML or script runs when an instructor or
a student opens the page, while the instructor's own markdown renders as written. Student text is
inert to MathJax too (:func:`inert`): a ``$\\int$`` in an exception's message is shown as typed,
not typeset, here and in formgrader.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

MAX_TEXT = 20_000  # characters of one output kept in the graded notebook
SAFE_MIME = ("text/plain", "image/png")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit:,} more characters cut)"


def safe_outputs(outputs: list) -> list:
    """A cell's outputs reduced to what is safe to show anywhere: text and valid PNG images."""
    out = []
    for o in outputs:
        kind = o.get("output_type")
        if kind == "stream":
            out.append(nbformat.v4.new_output("stream", name=o.get("name", "stdout"),
                                              text=clip(_ANSI.sub("", str(o.get("text", ""))))))
        elif kind == "error":
            lines = [_ANSI.sub("", str(x)) for x in o.get("traceback", [])][-12:]
            out.append(nbformat.v4.new_output("error", ename=str(o.get("ename", "Error"))[:100],
                                              evalue=clip(str(o.get("evalue", "")), 4000),
                                              traceback=[clip(x, 4000) for x in lines]))
        elif kind in ("display_data", "execute_result"):
            data = {}
            text = o.get("data", {}).get("text/plain")
            if text is not None:
                data["text/plain"] = clip(str(text if isinstance(text, str) else "".join(text)))
            png = o.get("data", {}).get("image/png")
            if isinstance(png, str) and _is_png(png):
                data["image/png"] = png
            if data:
                out.append(nbformat.v4.new_output("display_data", data=data))
    return out


def _is_png(data: str) -> bool:
    try:
        raw = base64.b64decode(data.replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) < 8 * 2**20


def verdict_outputs(passed: bool, message: str | None, printed: str) -> list:
    """A test cell's outputs: what it printed, then, if it failed, the check's message."""
    out = []
    if printed.strip():
        out.append(nbformat.v4.new_output("stream", name="stdout", text=clip(printed)))
    if not passed:
        text = clip(message or "failed")
        out.append(nbformat.v4.new_output("error", ename="Failed", evalue=text, traceback=[text]))
    return out


def escape(text: str) -> str:
    """Student-controlled text made inert inside markdown."""
    return html.escape(text).replace("`", "&#96;").replace("[", "&#91;").replace("]", "&#93;") \
        .replace("*", "&#42;").replace("_", "&#95;")


# MathJax typesets TeX wherever it finds it in a page's text ($…$, \(…\), \begin{…}), and entities
# do not hide it: it reads the text after the browser has decoded them. What it skips is an element
# of its ignore class: tex2jax_ignore (MathJax 2: nbconvert's pages, formgrader) and mathjax_ignore
# (MathJax 3 and later), and <pre> and <code>, which is where outputs and tracebacks are rendered.
MATH_IGNORE = "tex2jax_ignore mathjax_ignore"


def inert(text: str) -> str:
    """Student-controlled text made inert inside markdown: escaped (no HTML, no markdown; ``$`` and
    ``\\`` too, which the markdown renderer would otherwise take for math and escapes), in an element
    that MathJax skips (no TeX typeset). The reader sees the text exactly as it was."""
    text = escape(text).replace("$", "&#36;").replace("\\", "&#92;").replace("~", "&#126;")
    return f'<span class="{MATH_IGNORE}">{text}</span>'


def report_cell(assignment: str, rows: list, notes: list[str]) -> NotebookNode:
    """The markdown cell opening the feedback: the score, every lost point and why, and the notes.
    ``rows``: (exercise id, points, max points, reason or None)."""
    got, total = sum(r[1] for r in rows), sum(r[2] for r in rows)
    lines = [f"## Grading report: {escape(assignment)} (Score: {got:.1f} / {total:.1f})", "",
             f"**{got:g} / {total:g} points.**", ""]
    lost = [r for r in rows if r[1] < r[2]]
    if lost:
        lines += ["Points lost:", ""]
        for gid, pts, max_pts, reason in lost:
            first = (reason or "no reason recorded").strip().splitlines()[0]
            lines.append(f"- `{gid}` (−{max_pts - pts:g}): {inert(first[:400])}")
    else:
        lines.append("No points lost.")
    if notes:
        lines += ["", "What the grader did with your notebook:", ""] + [f"- {inert(n)}" for n in notes]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    cell.id = "grading-report"
    return cell


def safe_markdown(cell: NotebookNode) -> None:
    """A markdown cell the student wrote, shown as text: every line indented, so the whole cell is
    one code block, which markdown shows literally (HTML-escaped by the renderer, not HTML) and
    MathJax skips (``<pre><code>``). Escaping it here as well would show the entities themselves."""
    cell.source = "\n".join("    " + line for line in str(cell.get("source", "")).splitlines())


_EXPORTER = None

# Feedback pages sit at OUT/feedback/<student>/<assignment>/<notebook>.html and load MathJax from
# OUT/feedback/_mathjax (a packaged copy, jupyter-server-mathjax's MathJax 2.7): the math renders
# offline. Hand a student their folder with _mathjax beside it, or the math shows as TeX.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/autograder"
MATHJAX_URL = f"../../_mathjax/MathJax.js?config={MATHJAX_CONFIG}"
MATHJAX_PARTS = ("MathJax.js", "LICENSE", "config", "extensions", "jax", "fonts")
# The packaged copy ships the STIX web fonts only: without this MathJax asks for its TeX fonts.
MATHJAX_LOCAL = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web",
                                  webFont: "STIX-Web", imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/autograder.js");
"""


def mathjax_source() -> Path | None:
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    return static if (static / "MathJax.js").is_file() else None


def install_mathjax(feedback_dir: Path) -> Path | None:
    """Copy MathJax into ``feedback_dir/_mathjax`` once (again only when the packaged copy changes)."""
    import shutil

    source = mathjax_source()
    if source is None:
        return None
    dest = feedback_dir / "_mathjax"
    stamp = str((source / "MathJax.js").stat().st_size)
    if (dest / ".version").is_file() and (dest / ".version").read_text() == stamp:
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    copy_mathjax(dest)
    (dest / ".version").write_text(stamp)
    return dest


def copy_mathjax(dest: Path) -> None:
    """The packaged MathJax, with the course's local config, into ``dest`` (MathJax.js at its top)."""
    import shutil

    source = mathjax_source()
    if source is None:
        raise FileNotFoundError("jupyter-server-mathjax is not installed (make setup installs it)")
    dest.mkdir(parents=True, exist_ok=True)
    for part in MATHJAX_PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copyfile(src, dest / part)
    (dest / "config" / "local").mkdir(parents=True, exist_ok=True)
    (dest / "config" / "local" / "autograder.js").write_text(MATHJAX_LOCAL)


def exporter():
    """nbconvert's HTML exporter, sanitizing, made once per process (and warmed: its first page
    compiles the templates)."""
    global _EXPORTER
    if _EXPORTER is None:
        from nbconvert import HTMLExporter

        # Not nbconvert's sanitizer: it would escape the instructor's own headings and paragraphs.
        # What came from the student is made inert before it gets here (safe_outputs, safe_markdown,
        # escape), and nbconvert escapes code, text outputs and tracebacks itself.
        _EXPORTER = HTMLExporter(template_name="lab", exclude_input_prompt=True, exclude_output_prompt=True,
                                 mathjax_url=MATHJAX_URL)
        _EXPORTER.from_notebook_node(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("*warm*"),
                                                                    nbformat.v4.new_code_cell("x = 1")]))
    return _EXPORTER


# A released page travels: nbgrader's exchange copies the HTML alone to the student, whose copy
# opens through their own Jupyter server (…/files/… or JupyterLab's HTML viewer, whose <base> is
# that URL), where the server's packaged MathJax (jupyter-server-mathjax) answers. So the page
# asks its base URL: under a Jupyter server, the server's copy; elsewhere (opened from
# OUT/feedback on disk), the copy beside the pages. Nothing is fetched from the network either way.
MATHJAX_SERVER = "static/jupyter_server_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_LOADER = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", webFont: "STIX-Web",
                                 imageFont: null}});
</script>
<script>
(function () {
  var at = String(document.baseURI || location.href).match(/^(https?:\\/\\/[^?#]*?\\/)(files|view|lab\\/tree|tree)\\//);
  var src = at ? at[1] + "%s" : "%s";
  document.write('<script src="' + src + '"><\\/script>');
})();
</script>""" % (MATHJAX_SERVER, MATHJAX_URL)


def page(nb: NotebookNode) -> str:
    """The notebook as a sanitized HTML page (see :func:`exporter`), its MathJax found offline
    wherever the page is opened (``MATHJAX_LOADER``)."""
    body, _ = exporter().from_notebook_node(nb)
    tag = f'<script src="{MATHJAX_URL}"> </script>'
    if body.count(tag) != 1:
        raise RuntimeError("nbconvert's page template changed: the MathJax tag to replace was not found once")
    return body.replace(tag, MATHJAX_LOADER)


def render(nb: NotebookNode, path: Path) -> None:
    """The notebook as a sanitized HTML page at ``path``."""
    body = page(nb)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(path)


def error_page(path: Path, assignment: str, notebook: str, status: str, message: str, max_score: float) -> None:
    """The page for a submission that could not be graded: what was wrong, and what to do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>Feedback</title>"
        f"<h1>{html.escape(assignment)}: {html.escape(notebook)} (Score: 0.0 / {max_score:.1f})</h1>"
        f"<p><b>Score: 0 / {max_score:g}</b> ({html.escape(status)})</p>"
        f"<p>{html.escape(message)}</p>"
        "<p>Fix the problem and submit again; your notebook was not graded.</p>", encoding="utf-8")
