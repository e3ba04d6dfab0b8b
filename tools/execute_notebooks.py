"""Re-execute notebooks in place (for maintainers: `make lectures`), keeping their diffs quiet.

Each notebook runs top to bottom in a fresh kernel from its own folder; volatile metadata
(execution timings, widget state) is dropped so that re-running changes only real outputs.
Exits non-zero, naming the cell, if any cell raises.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def execute(path: Path, timeout: int = 600) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        start = time.perf_counter()
        try:
            nb = execute(path)
        except CellExecutionError as exc:
            print(f"{path}: a cell failed:\n{exc}", file=sys.stderr)
            return 1
        nbformat.write(nb, path)
        print(f"{path}: executed in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
