"""Prove the reference checks on whatever device autograder.reference picks (run it on a CUDA machine).

    PYTHONPATH=. python tools/gpu_check.py [ASSIGNMENT ...]

For each assignment: execute the instructor's solution cells and test cells (hidden tests included)
with the references on ``reference.device()``; then apply every catalogued wrong answer and check
that its exercise fails there too; finally compare GPU and CPU references on random convolutions.
Needs only numpy, torch and the repository (no nbformat, no nbgrader), so it runs on a bare GPU box.
Prints one line per check and a summary; exits 1 on any disagreement.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder import catalogue, reference as ref  # noqa: E402

MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def cells(assignment: str) -> list[dict]:
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    out = []
    for c in json.loads(path.read_text())["cells"]:
        if c["cell_type"] != "code":
            continue
        meta = c.get("metadata", {}).get("nbgrader", {})
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        out.append(dict(id=meta.get("grade_id", ""), solution=bool(meta.get("solution")),
                        test=bool(meta.get("grade")) and not meta.get("solution"), source=MARKER.sub("", src)))
    return out


def run(assignment: str, answers: dict[str, str]) -> dict[str, str | None]:
    """grade_id -> None (passed) or the failure's first line, for every test cell."""
    ns: dict = {"__name__": "__main__"}
    verdicts: dict[str, str | None] = {}
    for c in cells(assignment):
        if c["id"].endswith("_show"):
            continue
        err = io.StringIO()
        failure = None
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                exec(compile(answers.get(c["id"], c["source"]), c["id"], "exec"), ns)
            except Exception as exc:
                failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if c["test"]:
            verdicts[c["id"]] = failure or (("stderr: " + err.getvalue().strip()[:200]) if err.getvalue().strip() else None)
    return verdicts


def main(assignments: list[str]) -> int:
    dev = ref.device()
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    print(f"device: {dev} ({name}); torch {torch.__version__}; TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
          f"cudnn {torch.backends.cudnn.allow_tf32}")
    bad = 0
    for a in assignments:
        start = time.perf_counter()
        verdicts = run(a, {})
        failed = {k: v for k, v in verdicts.items() if v}
        print(f"{a}: solution passes {len(verdicts) - len(failed)}/{len(verdicts)} test cells, hidden tests "
              f"included ({time.perf_counter() - start:.1f} s)")
        for k, v in failed.items():
            print(f"  FAIL {k}: {v}")
        bad += len(failed)
        cat = catalogue.load(a)
        solutions = {c["id"]: c["source"] for c in cells(a) if c["solution"]}
        caught = 0
        for wa in cat.WRONG_ANSWERS:
            v = run(a, {wa.cell: wa.apply(solutions[wa.cell])})
            if v[wa.exercise]:
                caught += 1
            else:
                print(f"  MISSED wrong answer {wa.id!r}")
                bad += 1
        print(f"{a}: {caught}/{len(cat.WRONG_ANSWERS)} catalogued wrong answers lose points on {dev.type}")

    g = np.random.default_rng(0)
    worst = 0.0
    for _ in range(50):
        x, w = g.standard_normal((2, 3, 17, 13)), g.standard_normal((4, 3, 3, 2))
        kw = dict(stride=int(g.integers(1, 3)), pad=int(g.integers(0, 2)), dilation=int(g.integers(1, 3)))
        here = ref.conv2d(x, w, **kw)
        cpu = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=kw["stride"],
                                         padding=kw["pad"], dilation=kw["dilation"]).numpy()
        worst = max(worst, float(np.max(np.abs(here - cpu))))
    rtol, atol = ref.tolerance(np.float64)
    print(f"conv2d float64 on {dev.type} vs cpu over 50 random configurations: max |diff| {worst:.2e} "
          f"(tolerance atol {atol:.0e})")
    bad += worst > atol
    print("OK" if not bad else f"{bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir())))
