"""Automation of `compliance_run`: a daily schedule, and a sensor that notices new or changed export files.

Both start STOPPED (a fresh `make dev` never launches runs by itself); switch them on under Automation in the
Dagster UI, where the choice is kept in the instance storage.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg

from assets.resources import ReporterSettings
from compliance.ingest.landing import landing_fingerprints

JOB_NAME = "compliance_run"

daily_compliance_run = dg.ScheduleDefinition(
    name="daily_compliance_run",
    job_name=JOB_NAME,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every day at 06:00 UTC: the whole report as of the run's start.",
)


@dg.sensor(
    name="landing_folder_sensor",
    job_name=JOB_NAME,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs the report when an export file in the landing folder (CR_EXPORTS_DIR) is new or changed.",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext, settings: ReporterSettings) -> dg.SensorResult:
    """The cursor is {file name: sha256} of the folder as last seen; a run is requested once per change."""
    seen = json.loads(context.cursor) if context.cursor else {}
    now = landing_fingerprints(Path(settings.exports_dir))
    changed = {name: sha256 for name, sha256 in now.items() if seen.get(name) != sha256}
    if not changed:
        return dg.SensorResult(skip_reason="no new or changed export file", cursor=json.dumps(now, sort_keys=True))
    # The key covers the state before and after: the same change is requested once even if this evaluation is
    # repeated (Dagster drops a run key it has seen), while a file changed back to an earlier version still runs.
    run_key = hashlib.sha256(json.dumps([seen, changed], sort_keys=True).encode()).hexdigest()
    names = sorted(changed)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"compliance/landing_files": ", ".join(names)[:1000]})],
        cursor=json.dumps(now, sort_keys=True),
    )
