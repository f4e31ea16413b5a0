"""Start-up: what a process imports before it does any work (issue 19, item 5).

Every run, `dagster dev` and each step process of the multiprocess job import `pipelines.definitions`; importing
Great Expectations took seconds of that, plotly and Dagster's webserver more. They are imported where a command
needs them: GX when a suite is built or a staged table validated (`compliance.expectations`), plotly when a
report or dashboard is rendered. `--help` imports neither Dagster nor any of those.

Each check runs in a fresh interpreter: this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Top-level packages, as they appear in sys.modules. (`--help` lists the vendor formats, whose modules import
# DuckDB and polars: about a tenth of a second, left alone.)
LOADED_BY_USE = ("great_expectations", "plotly", "pandas", "dagster_webserver", "dagster_graphql")
LOADED_BY_RUN = ("dagster", *LOADED_BY_USE)


def imported_after(code: str, packages: tuple[str, ...]) -> list[str]:
    """The ``packages`` found in ``sys.modules`` of a fresh interpreter once it has run ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(p for p in {list(packages)!r} if p in sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_loading_the_definitions_imports_neither_great_expectations_nor_plotly():
    assert imported_after("import pipelines.definitions", LOADED_BY_USE) == []


def test_the_validation_imports_great_expectations_when_it_runs():
    """The other side of the same contract: the GX checks still run GX (loaded by the function, not skipped). In
    this process with the worker off; with it on, GX is the worker's alone (tests/test_expectations_worker.py)."""
    code = (
        "import os\nos.environ['CR_GX_WORKER'] = 'off'\n"
        "import pipelines.definitions\n"
        "from compliance.expectations import suite_json\n"
        "from compliance.ingest.contract import SOURCES\n"
        "from compliance.policy import load_policy\n"
        "suite_json(SOURCES['tickets'], load_policy('platform'), '2026-11-01T00:00:00Z', None)"
    )
    assert imported_after(code, ("great_expectations",)) == ["great_expectations"]


def test_help_imports_nothing_a_run_needs():
    code = "import contextlib, io\nfrom pipelines.cli import main\nwith contextlib.redirect_stdout(io.StringIO()):\n"
    code += "    try:\n        main(['--help'])\n    except SystemExit:\n        pass"
    assert imported_after(code, LOADED_BY_RUN) == []
