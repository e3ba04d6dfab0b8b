"""make site: the lectures and the blank assignments as a static HTML book, built offline.

    python tools/build_site.py [OUT]      # default work/site; open OUT/html/index.html

The lectures are rendered from their executed notebooks (nothing is re-run); the assignments are
their student releases, as read-only pages. The navigation follows the course's arc; links
between lectures (``02_convolution.ipynb``) become links between pages. Math is typeset by a
packaged MathJax (jupyter-server-mathjax's copy) shipped inside the site, so the book reads the
same with no network. Built with jupyter-book 1 (Sphinx), which needs nothing from the internet.
The lectures' cell tags decide what is collapsed: ``hide-cell`` ("Try it." answers: code and
outputs) and ``hide-output`` (the result of a "Predict, then run." prompt) become closed
``<details>``; an answer in words is a ``<details>`` in the markdown itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.course import find_course  # noqa: E402
from autograder.grading.feedback import MATHJAX_CONFIG, copy_mathjax  # noqa: E402

MATHJAX = f"mathjax/MathJax.js?config={MATHJAX_CONFIG}"


def stage(src: Path) -> dict[str, list[str]]:
    """Copy the pages into ``src``; return the table of contents (part caption -> page paths)."""
    course = find_course(ROOT)
    shutil.rmtree(src, ignore_errors=True)
    (src / "lectures").mkdir(parents=True)
    (src / "assignments").mkdir()
    toc: dict[str, list[str]] = {"Lectures": [], "Assignments (blank, as released)": []}
    lectures = sorted(course.lectures.glob("[0-9][0-9]_*.ipynb"))
    for path in lectures:
        shutil.copyfile(path, src / "lectures" / path.name)
        toc["Lectures"].append(f"lectures/{path.stem}")
    for assignment in course.assignment_ids():
        for path in sorted((course.assignments / assignment).glob("*.ipynb")):
            shutil.copyfile(path, src / "assignments" / path.name)
            toc["Assignments (blank, as released)"].append(f"assignments/{path.stem}")

    arc = re.search(r"## The arc\n\n(.*?)\n\n", (ROOT / "README.md").read_text(), re.S)
    table = arc.group(1) if arc else ""
    for path in lectures:  # the arc's lecture and assignment names become links
        table = table.replace(f"`{path.stem}`", f"[{path.stem}](lectures/{path.stem}.ipynb)")
    for assignment in course.assignment_ids():
        for nb in course.notebooks(assignment):
            table = table.replace(f"`{assignment}`", f"[{assignment}](assignments/{nb}.ipynb)")
    (src / "intro.md").write_text(
        "# ConvNets, from pixels to ResNet\n\n"
        "A course in notebooks: read each lecture (executed, with its figures), then do the matching "
        "assignment. To work on an assignment, fetch your own copy (`python -m autograder fetch "
        "a1_images_and_convolution`) and open it in JupyterLab (`make lab`); the pages here are "
        "read-only.\n\n## The arc\n\n" + table + "\n")

    lines = ["format: jb-book", "root: intro", "parts:"]
    for caption, pages in toc.items():
        lines.append(f"  - caption: \"{caption}\"")
        lines.append("    chapters:")
        lines += [f"      - file: {page}" for page in pages]
    (src / "_toc.yml").write_text("\n".join(lines) + "\n")
    (src / "_config.yml").write_text(f"""\
title: "ConvNets, from pixels to ResNet"
author: The course's authors
only_build_toc_files: true
execute:
  execute_notebooks: "off"
html:
  use_repository_button: false
  use_issues_button: false
  use_edit_page_button: false
  use_multitoc_numbering: false
launch_buttons:
  notebook_interface: none
  binderhub_url: ""
  thebe: false
sphinx:
  config:
    mathjax_path: "{MATHJAX}"
    html_static_path: ["_mathjax"]
    mathjax3_config: null
    mathjax2_config:
      tex2jax:
        inlineMath: [["\\\\(", "\\\\)"]]
        displayMath: [["\\\\[", "\\\\]"]]
        processEscapes: true
        processClass: "math|output_area"
    html_show_sourcelink: false
    nb_merge_streams: true
    suppress_warnings: ["mystnb.unknown_mime_type", "myst.header"]
""")
    copy_mathjax(src / "_mathjax" / "mathjax")  # copied into _static/, not listed as the book's own scripts
    return toc


def build(out: Path) -> Path:
    src = out / "src"
    stage(src)
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb), "build", str(src), "--path-output", str(out), "--builder", "html", "--keep-going"],
                          capture_output=True, text=True)
    html = out / "_build" / "html"
    if proc.returncode != 0 or not (html / "index.html").is_file():
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"jupyter-book build failed (status {proc.returncode})")
    return html


if __name__ == "__main__":
    out = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else find_course(ROOT).work / "site"
    print(f"site: {build(out) / 'index.html'}")
