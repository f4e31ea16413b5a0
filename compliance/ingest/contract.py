"""The canonical input files of the data contract (shared/spec/data-contract.md), as data.

The names here are fixed by the contract; everything organisation-specific (channel spellings, plans, tiers,
request types, data classes) comes from the policy at ingest time.
"""

from __future__ import annotations

from dataclasses import dataclass

FILE_FORMATS = ("csv", "parquet", "jsonl")
# The quarantine (rows rejected with a reason), whether ingest or a conversion rejected them: column -> SQL type.
QUARANTINE_SCHEMA = {
    "source_file": "VARCHAR",
    "line": "BIGINT",
    "record_id": "VARCHAR",
    "reason_code": "VARCHAR",
    "reason": "VARCHAR",
}
QUARANTINE_COLUMNS_SQL = ", ".join(f"{column} {sql_type}" for column, sql_type in QUARANTINE_SCHEMA.items())
# The data contract's request types; a policy with a PRIV-TYPES rule (kind privacy_types) may narrow or extend them.
REQUEST_TYPES = ("erasure", "access", "portability", "rectification", "restriction", "objection")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id | text | timestamp | boolean | enum
    required: bool = False
    # For enums: a fixed value list, or the name of the policy list it comes from (see compliance.ingest.parsing.accepted_spellings).
    values: tuple[str, ...] | str = ()


@dataclass(frozen=True)
class Source:
    name: str
    domain: str
    columns: tuple[Column, ...]
    record_id: str  # the column that names a record in evidence and quarantine
    unique: bool = True  # record_id unique within the export
    # (earlier, later) timestamp pairs that must be ordered when both are present.
    ordered: tuple[tuple[str, str], ...] = ()
    # Columns the run adds to the staged table after the contract's: how a value was read (tickets_reading).
    derived: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.required)


def _ts(name: str, required: bool = False) -> Column:
    return Column(name, "timestamp", required)


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        Source(
            "tickets",
            "tickets",
            (
                Column("ticket_id", "id", True),
                Column("channel", "enum", True, "channels"),
                Column("plan", "enum", False, "plans"),
                Column("tier", "enum", False, "tiers"),
                _ts("created_at", True),
                _ts("first_response_at"),
                _ts("resolved_at"),
                Column("status", "enum", False, ("new", "open", "pending", "on_hold", "solved", "closed")),
                _ts("escalated_at"),
                _ts("senior_reviewed_at"),
                Column("subject", "text"),
                Column("description", "text"),
            ),
            record_id="ticket_id",
            ordered=(
                ("created_at", "first_response_at"),
                ("created_at", "resolved_at"),
                ("created_at", "escalated_at"),
                ("escalated_at", "senior_reviewed_at"),
            ),
            derived=("channel_source", "tier_source"),
        ),
        Source(
            "ticket_events",
            "tickets",
            (
                Column("ticket_id", "id", True),
                _ts("occurred_at", True),
                Column(
                    "event_type",
                    "enum",
                    True,
                    ("public_reply", "internal_note", "auto_ack", "status_change", "requester_reply"),
                ),
                Column("actor", "enum", False, ("agent", "requester", "system")),
                Column("new_status", "enum", False, ("new", "open", "pending", "on_hold", "solved", "closed")),
            ),
            record_id="ticket_id",
            unique=False,
        ),
        Source(
            "privacy_requests",
            "privacy",
            (
                Column("request_id", "id", True),
                Column("request_type", "enum", True, "request_types"),
                _ts("received_at", True),
                _ts("first_response_at"),
                _ts("completed_at"),
                Column("extended", "boolean"),
                _ts("extension_notified_at"),
                Column("status", "text"),
            ),
            record_id="request_id",
            ordered=(("received_at", "first_response_at"), ("received_at", "completed_at")),
        ),
        Source(
            "security_reports",
            "security",
            (
                Column("report_id", "id", True),
                _ts("received_at", True),
                _ts("acknowledged_at"),
                _ts("timeline_sent_at"),
                _ts("fixed_at"),
                _ts("disclosed_at"),
                _ts("embargo_extended_until"),
            ),
            record_id="report_id",
            ordered=(("received_at", "acknowledged_at"), ("received_at", "timeline_sent_at")),
        ),
        Source(
            "incidents",
            "status",
            (
                Column("incident_id", "id", True),
                Column("kind", "enum", True, ("incident", "maintenance")),
                Column("severity", "text"),
                _ts("started_at"),
                _ts("acknowledged_at"),
                _ts("resolved_at"),
                _ts("announced_at"),
                _ts("scheduled_start_at"),
                _ts("postmortem_published_at"),
            ),
            record_id="incident_id",
            ordered=(("started_at", "acknowledged_at"), ("started_at", "resolved_at")),
        ),
        Source(
            "incident_updates",
            "status",
            (Column("incident_id", "id", True), _ts("posted_at", True)),
            record_id="incident_id",
            unique=False,
        ),
        Source(
            "retention_inventory",
            "retention",
            (
                Column("record_id", "id", True),
                Column("data_class", "enum", True, ("account_data", "audit_log", "billing_record", "backup")),
                Column("workspace_id", "id"),
                Column("account_id", "id"),
                _ts("created_at", True),
                _ts("account_closed_at"),
                _ts("workspace_deleted_at"),
                _ts("deleted_at"),
            ),
            record_id="record_id",
            ordered=(("created_at", "deleted_at"),),
        ),
        # Optional: the vendor's own SLA verdicts and due times, as the adapters write them (vendor_sla.csv); the
        # run reconciles them with its own verdicts (compliance/rules/reconciliation.py). A record may have one
        # row per metric, so record_id is not unique.
        Source(
            "vendor_sla",
            "reconciliation",
            (
                Column("record_id", "id", True),
                Column("source", "enum", True, ("tickets", "incidents", "privacy_requests", "security_reports")),
                Column("metric", "enum", True, ("first_response", "resolution", "acknowledgement")),
                _ts("vendor_due_at"),
                Column("vendor_met", "boolean"),
                Column("vendor_status", "text"),
                Column("vendor_field", "text"),
            ),
            record_id="record_id",
            unique=False,
        ),
        # Optional: approved exceptions (record, rule) with their approver; compliance/rules/common.py applies them
        # (state ``waived``) or refuses them with a reason (evidence/waivers.csv). A record may be waived for several
        # rules, so record_id is not unique; a duplicate (record, rule) is refused there, not dropped here.
        Source(
            "waivers",
            "waivers",
            (
                Column("record_id", "id", True),
                Column("rule_id", "id", True),
                Column("reason", "text"),
                Column("approved_by", "text"),
                _ts("approved_at"),
                _ts("expires_at"),
            ),
            record_id="record_id",
            unique=False,
        ),
    )
}
