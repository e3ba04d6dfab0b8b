"""Do the pip path (requirements.txt), conda (environment.yml) and pyproject.toml agree?"""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from .support import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[A-Za-z0-9_,.-]+\])?==([A-Za-z0-9_.+-]+)$")


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = PIN.match(line)
        assert m, f"not an exact pin: {line!r}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def requirements() -> dict[str, str]:
    return pins((ROOT / "requirements.txt").read_text().splitlines())


def test_environment_yml_lists_the_same_packages_as_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    (pip_section,) = [d["pip"] for d in env["dependencies"] if isinstance(d, dict)]
    assert "python=3.11" in conda and "pip" in conda
    assert pins(pip_section) == requirements()


def test_every_pyproject_dependency_is_pinned_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]
                + [r for extra in project["optional-dependencies"].values() for r in extra]]
    pinned = requirements()
    assert {canonicalize_name(r.name) for r in declared} == set(pinned)
    for req in declared:
        version = Version(pinned[canonicalize_name(req.name)])
        assert req.specifier.contains(version), f"{req.name}=={version} is outside {req.specifier}"


def test_installed_versions_match_the_pins():
    from importlib.metadata import version

    for name, pinned in requirements().items():
        assert Version(version(name)).public == Version(pinned).public, name
