"""Policy model: a YAML profile of commitments, validated into plain dataclasses.

A policy is data, never code: another organisation writes its own file. Every problem in a file is reported
as ``PolicyError("<file>: <key path>: <problem>")`` so that a user can fix it without reading a traceback.
Every key must be known: a file is first checked against the shipped JSON Schema (``SCHEMA_PATH``), which
refuses an unknown key with the closest known one ("did you mean `calendar`?"), then by the semantic checks
below (a rule's calendar exists, a time zone is real, a regular expression runs in DuckDB).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError

from compliance.calendars import KINDS, CalendarError, CalendarSpec, did_you_mean
from compliance.core.bounded_yaml import RefusedYaml, load_bounded_yaml
from compliance.rule_kinds import RULE_KINDS as REGISTERED_KINDS

# The shipped profiles: an installed wheel holds them as package data compliance/policies/ (pyproject's
# package-dir maps the repository's policies/ folder there); a source checkout, editable or on PYTHONPATH,
# has that folder itself beside the package.
_PACKAGE_DIR = Path(__file__).resolve().parent
POLICY_DIR = next(
    (folder for folder in (_PACKAGE_DIR / "policies", _PACKAGE_DIR.parent / "policies") if folder.is_dir()),
    _PACKAGE_DIR / "policies",
)
# The version of a policy file without `version` (in force from the beginning).
UNVERSIONED = "unversioned"
# The policy format as a JSON Schema (draft 2020-12), shipped as package data: editors check a policy against it
# as it is typed, and load_policy validates every file against it before the semantic checks below.
SCHEMA_PATH = Path(__file__).resolve().parent / "policy.schema.json"

# Rule kinds the engine knows how to evaluate (kind -> domain; compliance.rule_kinds). A policy may only use these.
RULE_KINDS: dict[str, str] = {kind: spec.domain for kind, spec in REGISTERED_KINDS.items()}

_TARGET_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
# The years an export's timestamps may fall in unless the policy's ``timestamp_window`` says otherwise: before
# 1970 or after 2100 a support record's time is a placeholder or a typo (0001-01-01, 9999-12-31), never an event.
DEFAULT_TIMESTAMP_WINDOW = (1970, 2100)
# The longest deadline a target may set: a commitment is measured inside the timestamp window, so one longer than
# a century can never fall due there (and 1.0e+300 hours would overflow every integer type that counts it).
_MAX_TARGET_SECONDS = 100 * 366 * 86400
_MAX_TARGET_YEARS = 100
_MAX_TARGET_WORKING_DAYS = 100 * 366
# Regex syntax that Python accepts but DuckDB (RE2) and polars (Rust regex) reject: look-around, back-references.
_UNPORTABLE_REGEX = re.compile(r"\(\?<?[=!]|\\[1-9]")


DEFAULT_AMBER_BAND_PCT = 5.0


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, the key and the problem."""


@dataclass(frozen=True)
class Target:
    """A rule's deadline: open seconds on its calendar, or whole working days / calendar years."""

    seconds: int | None = None
    working_days: int | None = None
    years: int | None = None
    # The less strict end of a range target ("24-48 h": expectation 24 h, commitment 48 h).
    expectation_seconds: int | None = None
    expectation_working_days: int | None = None

    def describe(self) -> str:
        if self.working_days is not None:
            text = f"{self.working_days} working days"
            if self.expectation_working_days is not None:
                text = f"{self.expectation_working_days}-{text} (expectation {self.expectation_working_days})"
            return text
        if self.years is not None:
            return f"{self.years} years"
        if self.seconds is None:
            return "—"
        text = _describe_seconds(self.seconds)
        if self.expectation_seconds is not None:
            text += f" (expectation {_describe_seconds(self.expectation_seconds)})"
        return text


def _describe_seconds(seconds: int) -> str:
    # Days from three days up ("7 days"); below that hours, as the sources write them ("48 hours").
    for unit, size, smallest in (("days", 86400, 3 * 86400), ("hours", 3600, 3600), ("minutes", 60, 60)):
        if seconds % size == 0 and seconds >= smallest:
            count = seconds // size
            return f"{count} {unit[:-1] if count == 1 else unit}"
    return f"{seconds} seconds"


@dataclass(frozen=True)
class Rule:
    id: str
    domain: str
    kind: str
    title: str
    source_doc: str
    source_quote: str
    target: Target
    calendar: str | None
    applies_to: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def setting(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)


@dataclass(frozen=True)
class EmailSettings:
    """How an mbox archive is read: which addresses are the support side, which mail is automatic."""

    support_domains: tuple[str, ...] = ()  # default: the domains of the mailbox aliases of the channels
    auto_reply_senders: tuple[str, ...] = ("noreply", "no-reply", "donotreply", "do-not-reply")
    # One group: the ticket number an auto-reply announces ("工单号: TG-1234", "Ticket #1234").
    ticket_number_pattern: str = r"(?i)(?:工单号|工单编号|ticket\s*(?:number|no\.?|id|#))\s*(?:is\s*)?[:：#]?\s*([A-Za-z]{0,5}-?[0-9][0-9A-Za-z-]{3,})"


PRINT_VIOLATIONS_MAX_DEFAULT = 1000


@dataclass(frozen=True)
class Policy:
    path: Path
    sha256: str
    profile: str
    title: str
    source_timezone: str
    met_min_adherence_pct: float
    sources: Mapping[str, Mapping[str, str]]
    calendars: Mapping[str, CalendarSpec]
    channels: Mapping[str, tuple[str, ...]]
    plans: tuple[str, ...]
    tiers: tuple[str, ...]
    priority_plans: tuple[str, ...]
    default_tier: str
    ticket_settings: Mapping[str, Any]
    rules: tuple[Rule, ...]
    # Tier -> keywords, in the file's order: a ticket without a tier gets the first tier whose keyword it mentions.
    urgency_keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Words that, directly before a keyword, keep it from counting ("不紧急", "not urgent").
    urgency_negations: tuple[str, ...] = ()
    email: EmailSettings = field(default_factory=EmailSettings)
    # The dashboard's amber band: percentage points below the met threshold still shown amber (report.amber_band_pct).
    amber_band_pct: float = DEFAULT_AMBER_BAND_PCT
    # The version's name and the day (midnight UTC) it judges from; a file without them is "unversioned", in force
    # from the beginning. See load_policy_versions.
    version: str = UNVERSIONED
    effective_from: datetime | None = None

    # First and last year (both included) an export's timestamp may fall in; outside: quarantined as bad_timestamp.
    timestamp_window: tuple[int, int] = DEFAULT_TIMESTAMP_WINDOW

    def timestamp_bounds(self) -> tuple[datetime, datetime]:
        """The window as UTC instants: the first one inside, the first one after (exclusive)."""
        first_year, last_year = self.timestamp_window
        return datetime(first_year, 1, 1, tzinfo=UTC), datetime(last_year + 1, 1, 1, tzinfo=UTC)

    # report.print_violations_max: up to this many violations the printed report lists each; above, an appendix
    print_violations_max: int = PRINT_VIOLATIONS_MAX_DEFAULT

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def rules_of(self, *kinds: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.kind in kinds]

    @property
    def reference(self) -> str:
        """How the outputs name the policy file, never by an absolute local path: a shipped profile by its name
        (``platform``), another file by its path relative to the working folder (the repository, where an
        auditor re-runs it: ``policies/acme.yaml``), or, outside it, by its file name alone."""
        if self.path.parent == POLICY_DIR.resolve() and self.path.suffix == ".yaml":
            return self.path.stem
        return folder_reference(self.path)

    def channel_spellings(self) -> dict[str, str]:
        """Every accepted spelling of a channel (lower-case) mapped to its key."""
        spellings: dict[str, str] = {}
        for key, aliases in self.channels.items():
            spellings[key.lower()] = key
            for alias in aliases:
                spellings[alias.strip().lower()] = key
        return spellings


def folder_reference(path: Path) -> str:
    """A policy file or folder by its path relative to the working folder, or outside it by its name alone."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def load_policy_versions(name_or_path: str | Path) -> tuple[Policy, ...]:
    """A policy file (one version), or a folder of them, one file per version, oldest ``effective_from`` first.

    In a folder every file states ``version`` and ``effective_from``, all of one ``profile``, no two on the same
    day or with the same name: a version judges the items whose clock started from its day until the next
    version's. The oldest also judges the items that started before its day (there is nothing older to judge
    them by; the report names the version that judged)."""
    path = resolve_policy_path(name_or_path)
    if not path.is_dir():
        return (load_policy(path),)
    files = sorted(f for f in path.iterdir() if f.suffix in {".yaml", ".yml"} and not f.name.startswith("."))
    if not files:
        raise PolicyError(f"{path}: a policy folder without policy files (*.yaml), one per version")
    versions = [load_policy(file) for file in files]
    for policy in versions:
        if policy.version == UNVERSIONED or policy.effective_from is None:
            raise PolicyError(f"{policy.path}: every file of a policy folder needs `version` and `effective_from`")
        if policy.profile != versions[0].profile:
            raise PolicyError(f"{policy.path}: profile {policy.profile!r}, not the folder's {versions[0].profile!r}")
    versions.sort(key=lambda policy: policy.effective_from)
    for earlier, later in zip(versions, versions[1:], strict=False):
        if earlier.effective_from == later.effective_from or earlier.version == later.version:
            raise PolicyError(f"{later.path}: the same version or effective_from as {earlier.path.name}")
    return tuple(versions)


@dataclass(frozen=True)
class VersionWindow:
    """The part of a run's items one policy version judges: those whose clock started in [start, end) (None:
    unbounded on that side). ``latest``: the window of the run's newest version, which also judges what has no
    clock start (the retention inventory, a record whose start is unknown) and reads the exports."""

    policy: Policy
    start: datetime | None
    end: datetime | None
    latest: bool


def version_windows(
    versions: tuple[Policy, ...], start: datetime | None, end: datetime | None
) -> tuple[VersionWindow, ...]:
    """The versions that judge the items whose clock started in [start, end) (None: unbounded), oldest first,
    each with the part it judges: a version judges from its ``effective_from`` until the next version's, the
    oldest also what started before its day (there is nothing older to judge it by).

    Each item is judged by the version in force when its clock started, so that a target changed from a date on
    never rewrites the verdicts before it."""
    windows = []
    for index, policy in enumerate(versions):
        judged_from = None if index == 0 else policy.effective_from
        judged_until = versions[index + 1].effective_from if index + 1 < len(versions) else None
        window_start = _later(start, judged_from)
        window_end = _earlier(end, judged_until)
        if window_start is not None and window_end is not None and window_start >= window_end:
            continue
        windows.append((policy, window_start, window_end))
    return tuple(
        VersionWindow(policy, window_start, window_end, latest=index == len(windows) - 1)
        for index, (policy, window_start, window_end) in enumerate(windows)
    )


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    return first if second is None else second if first is None else max(first, second)


def _earlier(first: datetime | None, second: datetime | None) -> datetime | None:
    return first if second is None else second if first is None else min(first, second)


def resolve_policy_path(name_or_path: str | Path) -> Path:
    """A profile name (``platform``) names a shipped file; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"} or candidate.exists():
        return candidate
    shipped = POLICY_DIR / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    known = ", ".join(sorted(p.stem for p in POLICY_DIR.glob("*.yaml")))
    raise PolicyError(f"{name_or_path}: no such policy file or profile (shipped profiles: {known})")


def load_policy(name_or_path: str | Path) -> Policy:
    path = resolve_policy_path(name_or_path)
    try:
        raw_bytes = path.read_bytes()
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the policy file ({error.strerror or error})") from None
    return _parsed_policy(path, raw_bytes)


# Every step of a run loads the policy; the file's bytes are read each time, and the same bytes at the same path
# give the same (immutable) Policy, so parsing and schema validation are done once per process.
@functools.lru_cache(maxsize=64)
def _parsed_policy(path: Path, raw_bytes: bytes) -> Policy:
    try:
        document = load_bounded_yaml(raw_bytes.decode("utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        if isinstance(error, RefusedYaml):
            raise PolicyError(f"{path}{where}: {error.problem}") from None
        raise PolicyError(f"{path}: not valid YAML{where}: {problem}") from None
    try:
        if isinstance(document, dict):  # anything else gets _parse's message naming the expected shape
            _check_against_schema(document)
        return _parse(path, hashlib.sha256(raw_bytes).hexdigest(), document)
    except (_KeyProblem, CalendarError) as error:
        raise PolicyError(f"{path}: {error}") from None


class _KeyProblem(ValueError):
    pass


@functools.cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# The order in which schema errors are reported: a misspelled key first, since it also causes the "missing" and
# type errors of the key it was meant to be; then missing keys; then wrong values. Shallowest path first within
# each, and of two errors at one place the one of the more specific schema (a calendar's kind over any calendar).
_ERROR_RANK = {"additionalProperties": 0, "required": 1}
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "nothing",
}


def _check_against_schema(document: dict) -> None:
    """The first problem the shipped JSON Schema finds in the document, as one line naming its key path."""
    view = _json_view(document)
    errors = sorted(
        _schema_validator().iter_errors(view),
        key=lambda e: (_ERROR_RANK.get(e.validator, 2), len(e.absolute_path), -len(e.absolute_schema_path)),
    )
    if errors:
        raise _KeyProblem(_describe_schema_error(errors[0], view))


def _json_view(value: Any) -> Any:
    """The document as the JSON data the schema describes: YAML's unquoted dates become ISO strings, keys strings."""
    if isinstance(value, dict):
        return {str(key): _json_view(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_view(item) for item in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _describe_schema_error(error: ValidationError, document: dict) -> str:
    path, schema, value = list(error.absolute_path), error.schema, error.instance
    # A titled schema names what is expected ("a date YYYY-MM-DD"), or the object an unknown key was found in.
    title = schema.get("title") if isinstance(schema, dict) else None
    if error.validator == "additionalProperties":
        allowed = schema.get("properties", {})
        key = next(key for key in value if key not in allowed)
        context = f" in {title}" if title and path else ""  # the file itself needs no naming
        other_kinds = _kinds_allowing(schema, key)
        hint = f" (only for kind {', '.join(other_kinds)})" if other_kinds else did_you_mean(key, sorted(allowed))
        return f"{_key_path(document, [*path, key])}: unknown key `{key}`{context}{hint}"
    if error.validator == "required":
        key = next(key for key in error.validator_value if key not in value)
        return f"{_key_path(document, [*path, key])}: missing"
    return f"{_key_path(document, path)}: {_value_problem(error, title)}"


# Schemas of one kind each, named `<family>_<kind>` in the schema's $defs: a key refused by one kind's schema may
# belong to another kind, which the message then names instead of guessing a misspelling.
_KIND_FAMILIES = {"calendar": KINDS, "settings": tuple(RULE_KINDS)}


def _kinds_allowing(schema: Mapping[str, Any], key: str) -> list[str]:
    definitions = _schema_validator().schema["$defs"]
    for family, kinds in _KIND_FAMILIES.items():
        if any(definitions[f"{family}_{kind}"] is schema for kind in kinds):
            return [kind for kind in kinds if key in definitions[f"{family}_{kind}"]["properties"]]
    return []


def _value_problem(error: ValidationError, title: str | None) -> str:
    validator, expected, schema, value = error.validator, error.validator_value, error.schema, error.instance
    if validator == "type":
        kinds = [expected] if isinstance(expected, str) else [kind for kind in expected if kind != "null"]
        problem = f"expected {' or '.join(_TYPE_WORDS[kind] for kind in kinds)}, got {_describe_value(value)}"
        if "string" in kinds and isinstance(value, bool):
            problem += " (quote it: YAML reads an unquoted yes/no/on/off as true/false)"
        elif "string" in kinds and isinstance(value, (int, float)):
            problem += " (quote it: YAML reads some unquoted values, such as 17:00 or 000, as numbers)"
        return problem
    if validator in ("enum", "const"):
        choices = [str(choice) for choice in (expected if validator == "enum" else [expected]) if choice is not None]
        return f"unknown {title or 'value'} {value!r}{did_you_mean(str(value), choices)}"
    if validator in ("minimum", "maximum", "exclusiveMinimum"):
        return f"{_number_range(schema)}, got {value!r}"
    if title:
        return f"expected {title}, got {_describe_value(value)}"
    if validator in ("minLength", "minProperties", "minItems"):
        return "must not be empty"
    return " ".join(error.message.split())  # a keyword the schema does not use today: the library's own words


def _number_range(schema: Mapping[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if schema.get("exclusiveMinimum") == 0:
        return "must be a positive number"
    if low is not None and high is not None:
        return f"must be a number between {low} and {high}"
    return f"must be at least {low}" if low is not None else f"must be at most {high}"


def _describe_value(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value[:60]!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        shown = repr(value)
        return f"the list {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return type(value).__name__


def _key_path(document: dict, path: list[Any]) -> str:
    """``rules.SUP-TECH-PRIO.calender``: keys joined by dots, a rule by its id when it has one, other items ``[i]``."""
    text, node = "", document
    for depth, part in enumerate(path):
        if isinstance(part, int):
            rule_id = (
                node[part].get("id") if depth == 1 and path[0] == "rules" and isinstance(node[part], dict) else None
            )
            text += f".{rule_id}" if isinstance(rule_id, str) and rule_id.strip() else f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):  # the last part of an unknown or missing key is not in the document
            node = None
    return text


def _require(mapping: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...] = object) -> Any:
    if key not in mapping or mapping[key] is None:
        raise _KeyProblem(f"{where}{key}: missing")
    value = mapping[key]
    if not isinstance(value, kind):
        raise _KeyProblem(f"{where}{key}: expected {_type_name(kind)}, got {type(value).__name__}")
    return value


def _optional(mapping: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if mapping.get(key) is None:
        return default
    return _require(mapping, key, where, kind)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _string_list(mapping: Mapping[str, Any], key: str, where: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    values = _optional(mapping, key, where, list, list(default))
    for index, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise _KeyProblem(f"{where}{key}[{index}]: expected a non-empty string")
    return tuple(values)


def _parse(path: Path, sha256: str, document: Any) -> Policy:
    if not isinstance(document, dict):
        raise _KeyProblem("the file must contain a mapping with `profile`, `calendars` and `rules`")
    profile = _require(document, "profile", "", str)
    source_timezone = _optional(document, "source_timezone", "", str, "UTC")
    if source_timezone not in zoneinfo.available_timezones() and source_timezone != "UTC":
        raise _KeyProblem(f"source_timezone: unknown time zone {source_timezone!r}")
    window = _optional(document, "timestamp_window", "", dict, {})
    timestamp_window = (
        _optional(window, "first_year", "timestamp_window.", int, DEFAULT_TIMESTAMP_WINDOW[0]),
        _optional(window, "last_year", "timestamp_window.", int, DEFAULT_TIMESTAMP_WINDOW[1]),
    )
    if timestamp_window[0] > timestamp_window[1]:
        raise _KeyProblem(
            f"timestamp_window: first_year {timestamp_window[0]} is after last_year {timestamp_window[1]}"
        )
    verdict = _optional(document, "verdict", "", dict, {})
    met_min = _optional(verdict, "met_min_adherence_pct", "verdict.", (int, float), 100)
    if not 0 <= met_min <= 100:
        raise _KeyProblem(f"verdict.met_min_adherence_pct: must be between 0 and 100, got {met_min}")

    report = _optional(document, "report", "", dict, {})
    amber_band = _optional(report, "amber_band_pct", "report.", (int, float), DEFAULT_AMBER_BAND_PCT)
    if isinstance(amber_band, bool) or not 0 <= amber_band <= 100:
        raise _KeyProblem(f"report.amber_band_pct: must be a number between 0 and 100, got {amber_band!r}")
    print_violations_max = _optional(report, "print_violations_max", "report.", int, PRINT_VIOLATIONS_MAX_DEFAULT)
    if isinstance(print_violations_max, bool) or not 0 <= print_violations_max <= 2000:
        raise _KeyProblem(
            f"report.print_violations_max: must be a whole number from 0 to 2000, got {print_violations_max}"
        )

    sources = _optional(document, "sources", "", dict, {})
    calendars_raw = _require(document, "calendars", "", dict)
    calendars = {
        str(cal_id): CalendarSpec.from_mapping(str(cal_id), _require(calendars_raw, cal_id, "calendars.", dict))
        for cal_id in calendars_raw
    }

    channels_raw = _optional(document, "channels", "", dict, {})
    channels: dict[str, tuple[str, ...]] = {}
    for key, spec in channels_raw.items():
        spec = spec or {}
        if not isinstance(spec, dict):
            raise _KeyProblem(f"channels.{key}: expected a mapping with `aliases`")
        channels[str(key)] = _string_list(spec, "aliases", f"channels.{key}.")

    plans = _string_list(document, "plans", "")
    tiers_raw = _optional(document, "tiers", "", dict, {})
    tiers = _string_list(tiers_raw, "values", "tiers.")
    priority_plans = _string_list(tiers_raw, "priority_plans", "tiers.")
    for index, plan in enumerate(priority_plans):
        if plans and plan not in plans:
            raise _KeyProblem(f"tiers.priority_plans[{index}]: unknown plan {plan!r} (plans: {', '.join(plans)})")
    default_tier = _optional(tiers_raw, "default", "tiers.", str, tiers[0] if tiers else "standard")
    if tiers and default_tier not in tiers:
        raise _KeyProblem(f"tiers.default: unknown tier {default_tier!r} (tiers: {', '.join(tiers)})")
    ticket_settings = _optional(document, "tickets", "", dict, {})
    urgency_keywords = _parse_urgency_keywords(_optional(document, "urgency_keywords", "", dict, {}), tiers)
    urgency_negations = _string_list(document, "urgency_negations", "")
    email = _parse_email(_optional(document, "email", "", dict, {}), channels)

    rules_raw = _require(document, "rules", "", list)
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(rules_raw):
        rule = _parse_rule(raw, f"rules[{index}]", calendars, channels, tiers, sources)
        if rule.id in seen:
            raise _KeyProblem(f"rules[{index}].id: duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)

    effective_from = _optional(document, "effective_from", "", (str, date), None)
    return Policy(
        path=path.resolve(),
        sha256=sha256,
        profile=profile,
        title=_optional(document, "title", "", str, profile),
        source_timezone=source_timezone,
        met_min_adherence_pct=float(met_min),
        sources=sources,
        calendars=calendars,
        channels=channels,
        plans=plans,
        tiers=tiers,
        priority_plans=priority_plans,
        default_tier=default_tier,
        ticket_settings=ticket_settings,
        rules=tuple(rules),
        urgency_keywords=urgency_keywords,
        urgency_negations=urgency_negations,
        email=email,
        amber_band_pct=float(amber_band),
        version=_optional(document, "version", "", str, UNVERSIONED),
        effective_from=_effective_day(effective_from) if effective_from is not None else None,
        timestamp_window=timestamp_window,
        print_violations_max=print_violations_max,
    )


def _effective_day(value: str | date) -> datetime:
    """``effective_from`` (YAML's unquoted date, or the same as text; the schema checked its shape) as midnight UTC."""
    try:
        day = value if isinstance(value, date) else date.fromisoformat(value)
    except ValueError as error:
        raise _KeyProblem(f"effective_from: {error}") from None
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _parse_urgency_keywords(raw: Mapping[str, Any], tiers: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    parsed = []
    for tier in raw:
        if tiers and tier not in tiers:
            raise _KeyProblem(f"urgency_keywords.{tier}: unknown tier {tier!r} (tiers: {', '.join(tiers)})")
        parsed.append((str(tier), _string_list(raw, tier, "urgency_keywords.")))
    return tuple(parsed)


def _parse_email(raw: Mapping[str, Any], channels: Mapping[str, tuple[str, ...]]) -> EmailSettings:
    alias_domains = sorted(
        {alias.rsplit("@", 1)[1].lower() for aliases in channels.values() for alias in aliases if "@" in alias}
    )
    defaults = EmailSettings()
    pattern = _optional(raw, "ticket_number", "email.", str, defaults.ticket_number_pattern)
    return EmailSettings(
        support_domains=tuple(d.lower() for d in _string_list(raw, "support_domains", "email.", tuple(alias_domains))),
        auto_reply_senders=tuple(
            s.lower() for s in _string_list(raw, "auto_reply_senders", "email.", defaults.auto_reply_senders)
        ),
        ticket_number_pattern=_portable_regex(pattern, "email.ticket_number", groups=1),
    )


def _portable_regex(value: Any, where: str, groups: int | None = None) -> str:
    """A regular expression that Python, DuckDB (RE2) and polars all read the same way."""
    if not isinstance(value, str) or not value.strip():
        raise _KeyProblem(f"{where}: expected a non-empty regular expression")
    try:
        compiled = re.compile(value)
    except re.error as error:
        raise _KeyProblem(f"{where}: not a valid regular expression: {error}") from None
    if _UNPORTABLE_REGEX.search(value):
        raise _KeyProblem(f"{where}: look-around and back-references are not supported (patterns run in DuckDB)")
    if groups is not None and compiled.groups != groups:
        raise _KeyProblem(f"{where}: needs exactly {groups} capture group(s), found {compiled.groups}")
    return value


def _parse_settings(raw: Mapping[str, Any], kind: str, where: str) -> Mapping[str, Any]:
    met_min = raw.get("met_min_adherence_pct")
    if met_min is not None and (
        isinstance(met_min, bool) or not isinstance(met_min, (int, float)) or not 0 <= met_min <= 100
    ):
        raise _KeyProblem(f"{where}met_min_adherence_pct: must be a number between 0 and 100, got {met_min!r}")
    zone = raw.get("controller_timezone")
    if zone is not None and zone != "UTC" and zone not in zoneinfo.available_timezones():
        raise _KeyProblem(f"{where}controller_timezone: unknown time zone {zone!r}")
    if kind == "information_completeness":
        items = _require(raw, "required_information", where, dict)
        if not items:
            raise _KeyProblem(f"{where}required_information: names no item")
        for item, spec in items.items():
            if not isinstance(spec, dict):
                raise _KeyProblem(f"{where}required_information.{item}: expected a mapping with `label` and `pattern`")
            _require(spec, "label", f"{where}required_information.{item}.", str)
            _portable_regex(spec.get("pattern"), f"{where}required_information.{item}.pattern")
    return raw


def _parse_rule(
    raw: Any,
    where: str,
    calendars: Mapping[str, CalendarSpec],
    channels: Mapping[str, tuple[str, ...]],
    tiers: tuple[str, ...],
    sources: Mapping[str, Any],
) -> Rule:
    if not isinstance(raw, dict):
        raise _KeyProblem(f"{where}: expected a mapping")
    rule_id = _require(raw, "id", f"{where}.", str)
    where = f"rules.{rule_id}."
    kind = _require(raw, "kind", where, str)
    if kind not in RULE_KINDS:
        raise _KeyProblem(f"{where}kind: unknown rule kind {kind!r} (known: {', '.join(sorted(RULE_KINDS))})")
    domain = _optional(raw, "domain", where, str, RULE_KINDS[kind])
    if domain != RULE_KINDS[kind]:
        raise _KeyProblem(f"{where}domain: rule kind {kind!r} belongs to domain {RULE_KINDS[kind]!r}, not {domain!r}")
    source = _require(raw, "source", where, dict)
    source_doc = str(_require(source, "doc", f"{where}source.", (str, int)))
    if sources and source_doc not in {str(k) for k in sources}:
        raise _KeyProblem(f"{where}source.doc: unknown source {source_doc!r} (sources: {', '.join(map(str, sources))})")
    calendar = _optional(raw, "calendar", where, str, None)
    if calendar is not None and calendar not in calendars:
        raise _KeyProblem(f"{where}calendar: unknown calendar {calendar!r} (calendars: {', '.join(calendars)})")
    applies_to = _optional(raw, "applies_to", where, dict, {})
    if "channel" in applies_to and channels and applies_to["channel"] not in channels:
        raise _KeyProblem(f"{where}applies_to.channel: unknown channel {applies_to['channel']!r}")
    if "tier" in applies_to and tiers and applies_to["tier"] not in tiers:
        raise _KeyProblem(f"{where}applies_to.tier: unknown tier {applies_to['tier']!r}")
    target = _parse_target(_optional(raw, "target", where, dict, {}), f"{where}target.", calendars.get(calendar or ""))
    return Rule(
        id=rule_id,
        domain=domain,
        kind=kind,
        title=_optional(raw, "title", where, str, rule_id),
        source_doc=source_doc,
        source_quote=str(_optional(source, "quote", f"{where}source.", str, "")),
        target=target,
        calendar=calendar,
        applies_to=applies_to,
        settings=_parse_settings(_optional(raw, "settings", where, dict, {}), kind, f"{where}settings."),
    )


def _parse_target(raw: Mapping[str, Any], where: str, calendar: CalendarSpec | None) -> Target:
    if not raw:
        return Target()
    for key, value in raw.items():
        if key == "expectation":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise _KeyProblem(f"{where}{key}: must be a positive number, got {value!r}")
    _check_target_length([(raw, where), (raw.get("expectation") or {}, f"{where}expectation.")])
    if "working_days" in raw:
        if calendar is None or calendar.kind != "working_days":
            raise _KeyProblem(f"{where}working_days: needs a calendar of kind working_days")
        expectation = raw.get("expectation", {}) or {}
        return Target(
            working_days=int(raw["working_days"]),
            expectation_working_days=int(expectation["working_days"]) if "working_days" in expectation else None,
        )
    if "years" in raw:
        return Target(years=int(raw["years"]))
    seconds = sum(int(round(float(raw[unit]) * size)) for unit, size in _TARGET_UNITS.items() if unit in raw)
    expectation = raw.get("expectation") or {}
    if expectation and not isinstance(expectation, dict):
        raise _KeyProblem(f"{where}expectation: expected a mapping such as {{hours: 24}}")
    expectation_seconds = sum(
        int(round(float(expectation[unit]) * size)) for unit, size in _TARGET_UNITS.items() if unit in expectation
    )
    if expectation_seconds and expectation_seconds > seconds:
        raise _KeyProblem(f"{where}expectation: the expectation must not be longer than the commitment")
    return Target(seconds=seconds, expectation_seconds=expectation_seconds or None)


def _check_target_length(parts: list[tuple[Any, str]]) -> None:
    """Refuse a deadline or its expectation (each a mapping of units, with its key path) longer than a century:
    see ``_MAX_TARGET_SECONDS``."""
    for part, prefix in parts:
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue  # a mapping (the expectation) or a type the schema refused already
            limit = {"years": _MAX_TARGET_YEARS, "working_days": _MAX_TARGET_WORKING_DAYS}.get(key)
            too_long = (
                value > limit if limit else key in _TARGET_UNITS and value * _TARGET_UNITS[key] > _MAX_TARGET_SECONDS
            )
            if too_long:
                raise _KeyProblem(f"{prefix}{key}: {value!r} is longer than a century, the longest target allowed")


def main(argv: list[str]) -> int:
    """``python -m compliance.policy``: the schema's path (for an editor's settings); with files, checks each."""
    if not argv:
        print(SCHEMA_PATH)
        return 0
    failed = 0
    for name in argv:
        try:
            print(f"{load_policy(name).path}: ok")
        except PolicyError as error:
            print(error)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
