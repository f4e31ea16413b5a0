"""Jira Service Management issue CSV → tickets, with JSM's remaining SLA time as its own verdict.

Jira writes its CSV in the exporting user's language: headers, month abbreviations (``18/Jul/26 9:10 AM``,
``18/juil./26 09:10``) and status names. Headers are matched through an alias table (English, French, German,
Spanish); SLA cells hold the time remaining when the clock stopped or now, ``H:MM``, negative when breached.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from compliance.adapters.base import ISO_FORMATS, Adapter, AdapterOptions, Check, Conversion, ConversionError
from compliance.adapters.layout import TableLayout, concat_vendor_sla, convert_csv_files, text

VERSION = "jira service management issue csv"
KEY, CREATED = "Issue key", "Created"
FIRST_RESPONSE, RESOLUTION = "Custom field (Time to first response)", "Custom field (Time to resolution)"
REQUEST_TYPE = "Custom field (Request Type)"
# Canonical (English) header -> its spellings in the languages Jira exports; custom fields by their inner name,
# whatever the "Custom field (…)" wrapper is called in that language.
HEADER_ALIASES: dict[str, tuple[str, ...]] = {
    KEY: ("Issue key", "Clé de ticket", "Clé", "Schlüssel", "Vorgangsschlüssel", "Clave", "Clave de incidencia"),
    "Summary": ("Summary", "Résumé", "Zusammenfassung", "Resumen"),
    "Description": ("Description", "Beschreibung", "Descripción"),
    CREATED: ("Created", "Création", "Créé", "Erstellt", "Creada", "Creado"),
    "Updated": ("Updated", "Mise à jour", "Aktualisiert", "Actualizada", "Actualizado"),
    "Resolved": ("Resolved", "Résolue", "Résolu", "Gelöst", "Erledigt", "Resuelta", "Resuelto"),
    "Status": ("Status", "État", "Statut", "Estado"),
    "Priority": ("Priority", "Priorité", "Priorität", "Prioridad"),
    REQUEST_TYPE: ("Request Type", "Customer Request Type", "Type de demande", "Anfragetyp", "Tipo de solicitud"),
    FIRST_RESPONSE: (
        "Time to first response",
        "Délai de première réponse",
        "Temps de première réponse",
        "Zeit bis zur ersten Antwort",
        "Tiempo hasta la primera respuesta",
        "Tiempo de primera respuesta",
    ),
    RESOLUTION: (
        "Time to resolution",
        "Délai de résolution",
        "Temps de résolution",
        "Zeit bis zur Lösung",
        "Tiempo de resolución",
        "Tiempo hasta la resolución",
    ),
}
# Month abbreviations (lower-case, without the trailing dot) in the same languages -> English.
MONTHS = {
    **{m.lower(): m for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")},
    "sept": "Sep",
    "janv": "Jan",
    "févr": "Feb",
    "fevr": "Feb",
    "mars": "Mar",
    "avr": "Apr",
    "mai": "May",
    "juin": "Jun",
    "juil": "Jul",
    "août": "Aug",
    "aout": "Aug",
    "déc": "Dec",
    "jän": "Jan",
    "mär": "Mar",
    "mrz": "Mar",
    "okt": "Oct",
    "dez": "Dec",
    "ene": "Jan",
    "abr": "Apr",
    "ago": "Aug",
    "set": "Sep",
    "dic": "Dec",
}
STATUSES = {
    "new": "new",
    "open": "open",
    "to do": "open",
    "waiting for support": "open",
    "in progress": "open",
    "work in progress": "open",
    "escalated": "open",
    "waiting for customer": "pending",
    "pending": "pending",
    "resolved": "solved",
    "done": "solved",
    "closed": "closed",
    "canceled": "closed",
    "cancelled": "closed",
    "ouvert": "open",
    "en cours": "open",
    "en attente de l'assistance": "open",
    "en attente du client": "pending",
    "résolu": "solved",
    "résolue": "solved",
    "terminé": "solved",
    "fermé": "closed",
    "fermée": "closed",
    "offen": "open",
    "in arbeit": "open",
    "wartet auf support": "open",
    "wartet auf kunden": "pending",
    "gelöst": "solved",
    "erledigt": "solved",
    "fertig": "solved",
    "geschlossen": "closed",
    "abierto": "open",
    "abierta": "open",
    "en curso": "open",
    "esperando soporte": "open",
    "esperando al cliente": "pending",
    "resuelto": "solved",
    "resuelta": "solved",
    "listo": "solved",
    "cerrado": "closed",
    "cerrada": "closed",
}
DATE_FORMATS = ("%d/%b/%y %I:%M %p", "%d/%b/%y %H:%M", "%d/%b/%Y %I:%M %p", "%d/%b/%Y %H:%M", "%d/%b/%y", *ISO_FORMATS)
LAYOUT = TableLayout(
    source="tickets",
    columns={
        "ticket_id": (KEY,),
        "channel": (REQUEST_TYPE,),
        "created_at": (CREATED,),
        "resolved_at": ("Resolved",),
        "status": ("Status",),
        "subject": ("Summary",),
        "description": ("Description",),
    },
    timestamp_formats=DATE_FORMATS,
    values={"status": STATUSES},
    required_headers=False,
)
SLA_METRICS = {FIRST_RESPONSE: "first_response", RESOLUTION: "resolution"}
_REMAINING = r"^([-−])?(\d+):([0-5]\d)$"


def _key(header: str) -> str:
    """A header compared without case, surrounding blanks or a "Custom field (…)" wrapper in any language."""
    header = " ".join(header.split()).casefold()
    inner = re.fullmatch(r"[^()]*\((.+)\)", header)
    return inner.group(1).strip() if inner else header


_CANONICAL = {_key(alias): canonical for canonical, aliases in HEADER_ALIASES.items() for alias in aliases}


def _english_headers(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Headers renamed to English, month abbreviations of the date columns to English; raises if not a JSM CSV."""
    renames = {}
    for name in frame.columns:
        canonical = _CANONICAL.get(_key(name))
        if canonical and canonical not in renames.values() and canonical not in frame.columns:
            renames[name] = canonical
    frame = frame.rename(renames)
    if not {KEY, CREATED} <= set(frame.columns):
        raise ConversionError(
            f"{path.name}: not a Jira Service Management CSV (no Issue key and Created columns in any "
            "known language: English, French, German, Spanish)"
        )
    dates = [name for name in (CREATED, "Resolved") if name in frame.columns]  # the mapped ones: others stay as written
    return frame.with_columns(_english_month(name).alias(name) for name in dates)


def _english_month(column: str) -> pl.Expr:
    """``18/juil./26 09:10`` → ``18/Jul/26 09:10``; ``a. m.``/``p. m.`` → AM/PM; other text unchanged."""
    value = pl.col(column).str.strip_chars()
    parts = value.str.extract_groups(r"^(\d{1,2})/([^/\d]+?)\.?/(\d{2,4})(.*)$")
    month = parts.struct.field("2").str.to_lowercase().replace_strict(MONTHS, default=None, return_dtype=pl.Utf8)
    rest = parts.struct.field("4").str.replace_all(r"(?i)a\.\s?m\.", "AM").str.replace_all(r"(?i)p\.\s?m\.", "PM")
    english = pl.concat_str([parts.struct.field("1"), pl.lit("/"), month, pl.lit("/"), parts.struct.field("3"), rest])
    return pl.coalesce(english, value)


def _remaining_minutes(header: str) -> pl.Expr:
    parts = text(header).str.extract_groups(_REMAINING)
    minutes = parts.struct.field("2").cast(pl.Int64) * 60 + parts.struct.field("3").cast(pl.Int64)
    return pl.when(parts.struct.field("1").is_not_null()).then(-minutes).otherwise(minutes)


def _sla_checks(frame: pl.DataFrame) -> tuple[pl.DataFrame, list[Check]]:
    checks = [
        Check(
            text(header).is_not_null() & ~text(header).str.contains(_REMAINING),
            "bad_number",
            pl.format("{}: not a remaining time H:MM: {}", pl.lit(header), text(header)),
        )
        for header in SLA_METRICS
        if header in frame.columns
    ]
    return frame, checks


def _sla_verdicts(frame: pl.DataFrame) -> pl.DataFrame:
    """Remaining time below zero: breached; zero or more once the ticket is resolved: met; else still running."""
    stopped = pl.col("resolved_at").is_not_null() if "resolved_at" in frame.columns else pl.lit(False)
    parts = []
    for header, metric in SLA_METRICS.items():
        if header not in frame.columns:
            continue
        remaining = _remaining_minutes(header)
        parts.append(
            frame.filter(text(header).is_not_null()).select(
                pl.col("ticket_id").alias("record_id"),
                pl.lit("tickets").alias("source"),
                pl.lit(metric).alias("metric"),
                pl.lit(None, dtype=pl.Utf8).alias("vendor_due_at"),
                pl.when(remaining < 0).then(pl.lit("false")).when(stopped).then(pl.lit("true")).alias("vendor_met"),
                text(header).alias("vendor_status"),
                pl.lit(header).alias("vendor_field"),
            )
        )
    return concat_vendor_sla(parts)


def convert(paths: list[Path], options: AdapterOptions) -> Conversion:
    converted = convert_csv_files(
        paths, LAYOUT, options, VERSION, prepare=_english_headers, extend=_sla_checks, vendor_sla=_sla_verdicts
    )
    return Conversion(
        format="jsm",
        format_version=VERSION,
        tables={"tickets": converted.table},
        quarantine=converted.quarantine,
        inputs=converted.inputs,
        vendor_sla=converted.vendor_sla,
        column_sources={"tickets": converted.column_sources},
        notes=[
            "headers matched in English, French, German and Spanish; month abbreviations of those languages read",
            "channel: the request type (a channel spelling of the policy, or mapped with a --mapping values: channel: section)",
            "dates: dd/Mon/yy with h:mm AM/PM or 24-hour hh:mm, or ISO-8601",
            "vendor verdicts: Time to first response / Time to resolution hold the remaining time H:MM; below zero -> "
            "not met; zero or more on a resolved ticket -> met; zero or more on an open ticket -> no verdict yet; "
            "JSM states no due time",
            "wall times read in " + options.timezone
            if options.timezone
            else "wall times kept without an offset (read in the policy's source_timezone)",
        ],
    )


ADAPTER = Adapter(
    name="jsm",
    description="Jira Service Management issue CSV (localised headers and dates; SLA cells as remaining H:MM)",
    convert=convert,
)
