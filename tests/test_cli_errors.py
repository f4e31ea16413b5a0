"""Operator mistakes: each exits 2 with one line naming the file, option or setting — never a traceback.

One class per kind of mistake (README, "Command line": exit codes 0 done, 1 the run failed, 2 a bad option,
folder, warehouse, setting or policy file). Every case fails before the asset graph runs, so these are quick.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import pytest
from conftest import SHARED, write

from compliance.samples.generate import GenerateOptions, generate
from pipelines.cli import EXIT_USAGE, main

AS_OF = "2026-11-01T00:00:00Z"
PAGERDUTY_REAL = SHARED / "data" / "real" / "incidents" / "pagerduty_raw_incidents.csv"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("exports")
    generate(GenerateOptions(out_dir=folder, tickets=50, privacy_requests=5, security_reports=3, incidents=3))
    return folder


@pytest.fixture(autouse=True)
def dagster_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def one_line_error(capsys, *names: str) -> str:
    """The run's stderr, asserted to be one line naming every one of ``names``, with nothing on stdout after it."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.out + captured.err
    assert "unexpected error" not in lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def run(exports: Path, out: Path, *extra: str) -> int:
    return main(["run", "--exports", str(exports), "--out", str(out), "--as-of", AS_OF, *extra])


class TestOutFolder:
    def test_out_naming_a_file(self, exports, tmp_path, capsys):
        target = write(tmp_path / "report.html", "not a folder")
        assert run(exports, target) == EXIT_USAGE
        assert one_line_error(capsys, "--out", str(target)).endswith("is a file, not a folder")
        assert target.read_text() == "not a folder"

    def test_out_in_a_folder_that_refuses_writes(self, exports, tmp_path, capsys):
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        try:
            if os.access(folder, os.W_OK):  # root writes anyway: /sys refuses new files even to root
                folder = Path("/sys")
                with pytest.raises(OSError), tempfile.TemporaryFile(dir=folder):
                    pass
            assert run(exports, folder) == EXIT_USAGE
            assert "not a writable folder" in one_line_error(capsys, "--out", str(folder))
        finally:
            (tmp_path / "read-only").chmod(0o755)

    def test_convert_out_naming_a_file(self, tmp_path, capsys):
        target = write(tmp_path / "converted", "a file")
        export = write(tmp_path / "incidents.csv", "id,created_on,resolved_on,urgency\nP1,2026-01-01T00:00:00Z,,high\n")
        code = main(["convert", "--format", "pagerduty", str(export), "--out", str(target)])
        assert code == EXIT_USAGE
        assert one_line_error(capsys, "--out", str(target)).endswith("is a file, not a folder")

    def test_generate_out_naming_a_file(self, tmp_path, capsys):
        target = write(tmp_path / "exports", "a file")
        assert main(["generate", "--out", str(target), "--tickets", "10"]) == EXIT_USAGE
        assert one_line_error(capsys, "--out", str(target)).endswith("is a file, not a folder")


class TestWarehouseFile:
    def test_a_file_that_is_not_a_duckdb_database(self, exports, tmp_path, capsys):
        warehouse = write(tmp_path / "warehouse.duckdb", "ticket_id,created_at\n")
        assert run(exports, tmp_path / "out", "--warehouse", str(warehouse)) == EXIT_USAGE
        assert "not a DuckDB database file" in one_line_error(capsys, "--warehouse", str(warehouse))
        assert warehouse.read_text() == "ticket_id,created_at\n"  # left as it was

    def test_an_empty_file(self, exports, tmp_path, capsys):
        warehouse = write(tmp_path / "empty.duckdb", "")
        assert run(exports, tmp_path / "out", "--warehouse", str(warehouse)) == EXIT_USAGE
        assert "not a DuckDB database file" in one_line_error(capsys, str(warehouse))

    def test_a_folder(self, exports, tmp_path, capsys):
        folder = tmp_path / "warehouse.duckdb"
        folder.mkdir()
        assert run(exports, tmp_path / "out", "--warehouse", str(folder)) == EXIT_USAGE
        assert "is a folder" in one_line_error(capsys, "--warehouse", str(folder))

    def test_a_real_duckdb_file_is_accepted_by_the_check(self, tmp_path):
        from assets.resources import Warehouse

        path = tmp_path / "w.duckdb"
        duckdb.connect(str(path)).close()
        Warehouse(path=str(path)).check_usable()  # no exception: the magic bytes are where DuckDB writes them


class TestLockFile:
    def test_a_lock_path_that_is_a_folder(self, exports, tmp_path, capsys):
        warehouse = tmp_path / "w.duckdb"
        (tmp_path / "w.duckdb.lock").mkdir()
        assert run(exports, tmp_path / "out", "--warehouse", str(warehouse)) == EXIT_USAGE
        assert "is a folder" in one_line_error(capsys, str(tmp_path / "w.duckdb.lock"))


class TestEnvironmentSettings:
    @pytest.mark.parametrize("value", ["abc", "-5", "nan", "inf"])
    def test_lock_timeout_that_is_not_a_number_of_seconds(self, exports, tmp_path, capsys, monkeypatch, value):
        monkeypatch.setenv("CR_LOCK_TIMEOUT", value)
        assert run(exports, tmp_path / "out") == EXIT_USAGE
        assert "not a number of seconds" in one_line_error(capsys, "CR_LOCK_TIMEOUT", repr(value))

    def test_partitions_start_that_is_not_a_date(self, tmp_path):
        """Read when the definitions load: a fresh interpreter, as `dagster dev` and the CLI each are."""
        import subprocess
        import sys

        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                "from pipelines.cli import main; raise SystemExit(main("
                + repr(["run", "--exports", str(tmp_path), "--out", str(tmp_path / "out"), "--as-of", AS_OF])
                + "))",
            ],
            env={**os.environ, "CR_PARTITIONS_START": "last year", "DAGSTER_HOME": str(tmp_path / "home")},
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.returncode == EXIT_USAGE, completed.stderr
        assert (
            completed.stderr.strip()
            == "compliance-report: CR_PARTITIONS_START='last year': not a date (e.g. 2025-01-01)"
        )

    def test_dagster_home_that_is_a_file(self, exports, tmp_path, capsys, monkeypatch):
        home = write(tmp_path / "home", "")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        assert run(exports, tmp_path / "out") == EXIT_USAGE
        assert "is a file, not a folder" in one_line_error(capsys, "DAGSTER_HOME", str(home))


class TestHostilePolicyFiles:
    def test_twenty_thousand_deep_yaml(self, exports, tmp_path, capsys):
        policy = write(tmp_path / "deep.yaml", "[" * 20_000 + "]" * 20_000 + "\n")
        assert run(exports, tmp_path / "out", "--policy", str(policy)) == EXIT_USAGE
        assert one_line_error(capsys, str(policy)).endswith("(line 1): nested deeper than 64 levels")

    def test_twenty_thousand_deep_json(self, exports, tmp_path, capsys):
        policy = write(tmp_path / "deep.yml", '{"rules": ' + '{"a": ' * 20_000 + "1" + "}" * 20_001 + "\n")
        assert run(exports, tmp_path / "out", "--policy", str(policy)) == EXIT_USAGE
        assert "nested deeper than 64 levels" in one_line_error(capsys, str(policy))

    def test_billion_laughs_is_refused_by_its_expanded_size(self, exports, tmp_path, capsys):
        levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        levels += [
            f"{name}: &{name} [{', '.join([f'*{prior}'] * 9)}]"
            for prior, name in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        policy = write(tmp_path / "bomb.yaml", "\n".join(levels) + "\n")
        assert run(exports, tmp_path / "out", "--policy", str(policy)) == EXIT_USAGE
        # Level n holds 10 * 9**n values with its aliases expanded: line 6 (f, 10 * 9**5 > 100,000) passes the limit.
        line = one_line_error(capsys, str(policy))
        assert line.endswith("(line 6): more than 100,000 values once its aliases are expanded")

    def test_an_alias_inside_the_value_it_names(self, tmp_path):
        from compliance.policy import PolicyError, load_policy

        policy = write(tmp_path / "cycle.yaml", "rules: &rules [1, *rules]\n")
        with pytest.raises(PolicyError, match=r"cycle.yaml \(line 1\): alias \*rules inside the value it names"):
            load_policy(policy)

    def test_aliases_that_yaml_dump_writes_for_shared_values_are_read(self, tmp_path):
        import yaml

        from compliance.policy import load_policy

        shipped = Path(__file__).resolve().parents[1] / "policies" / "platform.yaml"
        document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
        shared_calendar = document["calendars"][next(iter(document["calendars"]))]
        document["calendars"]["same_hours"] = shared_calendar  # dumped as an anchor and an alias
        text = yaml.safe_dump(document, allow_unicode=True)
        assert "*id001" in text
        policy = write(tmp_path / "shared.yaml", text)
        assert "same_hours" in load_policy(policy).calendars


class TestHostileMappingFiles:
    """A ``--mapping`` file is read with the policies' bounded loader: one line naming it, never a hang."""

    @staticmethod
    def _convert(tmp_path: Path, mapping: Path) -> int:
        vendor = write(tmp_path / "vendor.csv", "id,opened\nA1,2026-09-01T10:00:00Z\n")
        return main(
            ["convert", "--format", "mapping", str(vendor), "--mapping", str(mapping), "--out", str(tmp_path / "out")]
        )

    def test_twenty_thousand_deep_mapping(self, tmp_path, capsys):
        mapping = write(tmp_path / "deep.yaml", "[" * 20_000 + "]" * 20_000 + "\n")
        assert self._convert(tmp_path, mapping) == EXIT_USAGE
        assert one_line_error(capsys, str(mapping)).endswith("(line 1): nested deeper than 64 levels")

    def test_a_billion_laughs_mapping(self, tmp_path, capsys):
        levels = ['source: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        levels += [
            f"{name}: &{name} [{', '.join([f'*{prior}'] * 9)}]"
            for prior, name in zip("abcdefgh", "bcdefghi", strict=True)
        ]
        mapping = write(tmp_path / "bomb.yaml", "\n".join(levels) + "\n")
        assert self._convert(tmp_path, mapping) == EXIT_USAGE
        assert one_line_error(capsys, str(mapping)).endswith(
            "(line 6): more than 100,000 values once its aliases are expanded"
        )


class TestUnreadableVendorFiles:
    """The reader names the file, whichever adapter called it (PagerDuty's CSV, Statuspage's JSON)."""

    def test_empty_csv(self, tmp_path, capsys):
        empty = write(tmp_path / "incidents.csv", "")
        assert main(["convert", "--format", "pagerduty", str(empty), "--out", str(tmp_path / "out")]) == EXIT_USAGE
        assert one_line_error(capsys, str(empty)).endswith("not a readable CSV file: empty CSV")

    def test_unterminated_string_in_json(self, tmp_path, capsys):
        broken = write(tmp_path / "incidents.json", '{"incidents": [{"name": "cut')
        assert main(["convert", "--format", "statuspage", str(broken), "--out", str(tmp_path / "out")]) == EXIT_USAGE
        assert "Unterminated string" in one_line_error(capsys, str(broken))

    def test_twenty_thousand_deep_json_export(self, tmp_path, capsys):
        deep = write(tmp_path / "incidents.json", '{"incidents": ' + "[" * 20_000 + "]" * 20_000 + "}")
        assert main(["convert", "--format", "statuspage", str(deep), "--out", str(tmp_path / "out")]) == EXIT_USAGE
        assert one_line_error(capsys, str(deep)).endswith("not a usable JSON document: nested too deeply")


class TestCommandLine:
    def test_argparse_errors_are_one_line_and_the_usage_hint(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["run", "--exports", "x"])
        assert exit_info.value.code == EXIT_USAGE
        assert capsys.readouterr().err.splitlines() == [
            "compliance-report run: the following arguments are required: --out",
            "Usage: compliance-report run --help",
        ]

    def test_an_unknown_command(self, capsys):
        with pytest.raises(SystemExit) as exit_info:
            main(["publish"])
        assert exit_info.value.code == EXIT_USAGE
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2 and lines[0].startswith("compliance-report: argument command: invalid choice: 'publish'")
        assert lines[1] == "Usage: compliance-report --help"

    def test_version_prints_the_package_version(self, capsys):
        from importlib.metadata import version

        with pytest.raises(SystemExit) as exit_info:
            main(["--version"])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out == f"compliance-report {version('compliance-reporter')}\n"

    def test_missing_exports_folder(self, tmp_path, capsys):
        assert run(tmp_path / "nowhere", tmp_path / "out") == EXIT_USAGE
        assert one_line_error(capsys).endswith(f"--exports {tmp_path / 'nowhere'}: no such folder")
