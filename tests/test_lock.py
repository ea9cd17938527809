"""The lock file is what a fresh machine installs: it must cover pyproject.toml's ranges,
pin the CPU build of torch, carry hashes, and be what this environment actually runs."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
# the platform the lock is resolved for (scripts/lock.sh): CPython 3.11, x86_64 Linux
ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def locked() -> dict[str, tuple[Version, str]]:
    """name -> (version, the pin's whole entry text) for every package in the lock."""
    text = LOCK.read_text()
    pins: dict[str, tuple[Version, str]] = {}
    for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)(.*?)(?=^[A-Za-z0-9]|\Z)", text,
                         re.M | re.S):
        pins[canonicalize_name(m[1])] = (Version(m[2]), m[0])
    return pins


def project_requirements() -> list[Requirement]:
    """Every requirement of the core and of the `all` and `dev` extras, self-references
    (semcache[local,...]) expanded: what scripts/lock.sh resolves."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo, seen = ["all", "dev"], set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in extras[extra]:
            req = Requirement(text)
            if canonicalize_name(req.name) == "semcache":
                todo.extend(req.extras)
            else:
                out.append(req)
    return out


def test_every_requirement_is_locked_within_its_range():
    pins = locked()
    problems = []
    for req in project_requirements():
        if req.marker is not None and not req.marker.evaluate(ENV):
            continue
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req}: not in {LOCK.name} (run `make lock`)")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{req}: locked at {pins[name][0]}")
    assert not problems, problems


def test_every_pin_has_hashes():
    unhashed = [name for name, (_, entry) in locked().items() if "--hash=sha256:" not in entry]
    assert not unhashed


def test_torch_is_the_cpu_build_without_cuda():
    pins = locked()
    assert pins["torch"][0] == Version("2.13.0+cpu")
    cuda = [n for n in pins if n.startswith("nvidia-") or n == "triton"]
    assert not cuda, cuda


@pytest.mark.skipif(Path(sys.prefix).resolve() != (ROOT / ".venv").resolve()
                    and not os.environ.get("CI"),
                    reason="the suite runs outside the environment scripts/setup.sh builds")
def test_this_environment_is_the_lock():
    """`make test` runs in the environment scripts/setup.sh synced from the lock: every
    package there at exactly the locked version."""
    wrong = {}
    for name, (version, _) in locked().items():
        try:
            have = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            wrong[name] = "missing"
            continue
        if have != version:
            wrong[name] = f"{have} (locked {version})"
    assert not wrong, wrong
