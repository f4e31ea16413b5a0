"""The installed package, not the source tree: build the wheel, install it into a fresh venv outside the
repository and run the command line there with both shipped profiles.

A full dependency install would take minutes, so the fresh venv borrows the third-party packages of the
interpreter running the tests through a ``.pth`` line. A ``.pth`` line only appends a folder to ``sys.path``;
the ``.pth`` files inside that folder (among them the editable finder of a development install) are not run,
so ``compliance`` can only come from the wheel. Runs in ``make test`` (``make test-wheel`` alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILES = ("platform", "email-support")


def _run(command: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


class Installed(NamedTuple):
    bin_dir: Path  # of a fresh venv that holds the wheel and no other distribution
    site_packages: Path  # that venv's
    env: dict  # the environment without this repository on any path


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    # pip builds the wheel in an isolated environment with the setuptools that build-system.requires names.
    # From a copy: setuptools builds in the source folder, and a build/ left there from an earlier build would
    # put modules deleted since then into the wheel.
    source = work / "source"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "var", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"
        ),
    )
    build = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", work / "dist", source], work, env)
    # A quiet build: setuptools' deprecation and package-discovery warnings run to a hundred lines otherwise.
    assert [line for line in (build.stdout + build.stderr).splitlines() if "warn" in line.lower()] == []
    (wheel,) = (work / "dist").glob("compliance_reporter-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work, env)
    python = venv / "bin" / "python"
    site_packages = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env).stdout.strip()
    )
    borrowed = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site_packages / "borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n", encoding="utf-8")
    _run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel],
        work,
        env,
    )
    return Installed(venv / "bin", site_packages, env)


def test_the_package_comes_from_the_wheel(installed, tmp_path):
    probe = (
        "import sys, compliance, compliance.policy as p; "
        "print(compliance.__file__); print(p.POLICY_DIR); "
        "print(any('editable' in type(f).__name__.lower() or 'editable' in getattr(f, '__name__', '').lower() "
        "for f in sys.meta_path))"
    )
    module_file, policy_dir, editable_finder = _run(
        [installed.bin_dir / "python", "-c", probe], tmp_path, installed.env
    ).stdout.split("\n")[:3]
    assert Path(module_file).is_relative_to(installed.site_packages)
    assert Path(policy_dir) == installed.site_packages / "compliance" / "policies"
    assert sorted(path.name for path in Path(policy_dir).glob("*.yaml")) == [
        "city-311.yaml",
        "email-support.yaml",
        "platform.yaml",
        "status-feed.yaml",
    ]
    assert editable_finder == "False"


@pytest.mark.parametrize("profile", PROFILES)
def test_generate_and_run_a_shipped_profile(installed, tmp_path, profile):
    cli, env = installed.bin_dir / "compliance-report", installed.env
    exports, out = tmp_path / "exports", tmp_path / "out"
    _run(
        [
            cli,
            "generate",
            "--out",
            exports,
            "--tickets",
            300,
            "--privacy-requests",
            40,
            "--security-reports",
            10,
            "--incidents",
            10,
            "--retention-records",
            200,
        ],
        tmp_path,
        env,
    )
    result = _run(
        [cli, "run", "--policy", profile, "--exports", exports, "--out", out, "--as-of", "2026-11-01T00:00:00Z"],
        tmp_path,
        env,
    )
    assert f"policy {profile} ({profile}.yaml, version " in result.stdout
    assert (out / "compliance_report.html").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    # named by its profile (a file of the installed package's policies), never by an absolute local path
    assert manifest["policy"]["path"] == profile
