"""Resources: the run's settings (exports, output folder, policy, as-of) and the DuckDB warehouse."""

import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import dagster as dg
import duckdb

from compliance.policy import Policy, load_policy


def parse_as_of(text: str) -> datetime:
    """An ISO-8601 instant; one without an offset is read as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class ReporterSettings(dg.ConfigurableResource):
    """Where a run reads exports and writes evidence, under which policy and as-of instant."""

    exports_dir: str
    out_dir: str
    policy: str = "platform"
    as_of: str = ""  # ISO-8601; empty means the moment the run was created

    def load_policy(self) -> Policy:
        return load_policy(self.policy)

    def as_of_instant(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> datetime:
        if self.as_of:
            return parse_as_of(self.as_of)
        # Every asset of one run must judge against the same instant: the run's creation time.
        record = context.instance.get_run_record_by_id(context.run_id)
        created = record.create_timestamp if record else datetime.now(timezone.utc)
        return created.astimezone(timezone.utc).replace(microsecond=0)


class Warehouse(dg.ConfigurableResource):
    """The embedded DuckDB warehouse file (one writer at a time: runs execute in one process)."""

    path: str
    # DuckDB memory limit, e.g. "8GB" (empty: DuckDB's default, 80 % of RAM). Past it DuckDB spills to disk
    # where it can; some steps of the ticket clocks cannot, so ten million tickets need about 12 GB today.
    memory_limit: str = ""

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path)
        try:
            con.execute("SET TimeZone = 'UTC'")
            if self.memory_limit:
                con.execute(f"SET memory_limit = '{self.memory_limit}'")
            yield con
        finally:
            con.close()


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources for `dagster dev` and schedules, from CR_* environment variables."""
    out_dir = os.environ.get("CR_OUT_DIR", "var/out")
    return {
        "settings": ReporterSettings(
            exports_dir=os.environ.get("CR_EXPORTS_DIR", "var/exports"),
            out_dir=out_dir,
            policy=os.environ.get("CR_POLICY", "platform"),
            as_of=os.environ.get("CR_AS_OF", ""),
        ),
        "warehouse": Warehouse(path=os.environ.get("CR_WAREHOUSE", str(Path(out_dir) / "warehouse.duckdb"))),
    }
