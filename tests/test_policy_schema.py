"""The policy format as a JSON Schema: every key of a policy file is known, and the schema and the code agree.

A misspelled key is refused with one line naming the file, the key path and the closest known key; the schema
(compliance/policy.schema.json) is the one that editors check policies against.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import tomllib
from datetime import date
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

from compliance import calendars, rule_kinds
from compliance import policy as policy_module
from compliance.calendars import CalendarError, CalendarSpec
from compliance.calendars import parsing as calendar_parsing
from compliance.policy import RULE_KINDS, SCHEMA_PATH, PolicyError, load_policy
from compliance.rules import ticket_clocks

REPO = Path(__file__).resolve().parents[1]
POLICY_DIR = REPO / "policies"
SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
DEFS = SCHEMA["$defs"]
CODE_DIRS = ("compliance", "reports", "pipelines", "assets", "checks")
# Settings keys that issue 13's other items add to the code in parallel; the schema accepts them already.
SETTINGS_READ_BY_PARALLEL_WORK = {"controller_timezone", "extension_months"}
TOP_LEVEL_READ_BY_PARALLEL_WORK: set[str] = set()


def platform() -> dict:
    return yaml.safe_load((POLICY_DIR / "platform.yaml").read_text(encoding="utf-8"))


def rule(document: dict, rule_id: str) -> dict:
    return next(item for item in document["rules"] if item["id"] == rule_id)


def problem(tmp_path: Path, document: dict) -> str:
    """The one-line message without the file name, after checking that it starts with it."""
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    message = str(error.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and "Traceback" not in message
    return message.removeprefix(f"{path}: ")


def edited(edit) -> dict:
    document = platform()
    edit(document)
    return document


# --- the schema itself -----------------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(SCHEMA)


def _objects(schema, where="#"):
    """Every subschema of the document that describes a mapping, with its JSON pointer."""
    if isinstance(schema, dict):
        if "properties" in schema or "additionalProperties" in schema:
            yield where, schema
        for key, value in schema.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _objects(value, f"{where}/{index}")


def test_every_mapping_of_the_schema_is_closed():
    # Fixed keys: additionalProperties false. Maps keyed by the file's own names (calendars, channels, sources,
    # urgency tiers, required items): additionalProperties is the schema of a value. A rule's settings are closed
    # by the schema of its kind, which its `then` names.
    for where, schema in _objects(SCHEMA):
        if where.endswith(("/if", "/then")):
            continue  # an `if` only tests the kind; a `then` adds the kind's schema to a closed one
        assert schema.get("additionalProperties") is False or isinstance(schema.get("additionalProperties"), dict), (
            where
        )
    kinds = [branch["if"]["properties"]["kind"]["const"] for branch in DEFS["calendar"]["allOf"]]
    assert kinds == list(calendars.KINDS)
    for kind in calendars.KINDS:
        assert DEFS[f"calendar_{kind}"]["additionalProperties"] is False


def test_schema_ships_as_package_data():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert SCHEMA_PATH.name in pyproject["tool"]["setuptools"]["package-data"]["compliance"]
    assert SCHEMA_PATH.parent == Path(policy_module.__file__).resolve().parent
    assert any(dependency.startswith("jsonschema") for dependency in pyproject["project"]["dependencies"])


@pytest.mark.parametrize("path", sorted(POLICY_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_validate_and_point_editors_at_the_schema(path):
    text = path.read_text(encoding="utf-8")
    first_line = text.splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first_line)
    assert match, first_line
    assert (path.parent / match.group(1)).resolve() == SCHEMA_PATH
    Draft202012Validator(SCHEMA).validate(policy_module._json_view(yaml.safe_load(text)))
    assert load_policy(path).rules


def test_print_schema_path_and_check_files(tmp_path, capsys):
    assert policy_module.main([]) == 0
    assert capsys.readouterr().out == f"{SCHEMA_PATH}\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(edited(lambda d: d.update(calender={}))), encoding="utf-8")
    assert policy_module.main(["platform", str(broken)]) == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        f"{POLICY_DIR / 'platform.yaml'}: ok",
        f"{broken}: calender: unknown key `calender` (did you mean `calendars`?)",
    ]


# --- misspelled keys, at every level -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, expected",
    [
        # top level
        (
            lambda d: d.update(calender=d.pop("calendars")),
            "calender: unknown key `calender` (did you mean `calendars`?)",
        ),
        (
            lambda d: d.update(sourec_timezone="UTC"),
            "sourec_timezone: unknown key `sourec_timezone` (did you mean `source_timezone`?)",
        ),
        (
            lambda d: d["verdict"].update(met_min_adherance_pct=95),
            "verdict.met_min_adherance_pct: unknown key `met_min_adherance_pct` (did you mean `met_min_adherence_pct`?)",
        ),
        # calendars: a calendar, its hours and holidays
        (
            lambda d: d["calendars"]["CAL-BH-EST"].update(timezon="America/New_York"),
            "calendars.CAL-BH-EST.timezon: unknown key `timezon` in a business_hours calendar (did you mean `timezone`?)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["hours"].update(tues=[["09:00", "17:00"]]),
            "calendars.CAL-BH-EST.hours.tues: unknown key `tues` (did you mean `tue`?)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["hours"].update(
                Mon=d["calendars"]["CAL-BH-EST"]["hours"].pop("mon")
            ),
            "calendars.CAL-BH-EST.hours.Mon: unknown key `Mon` (did you mean `mon`?)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["holidays"].update(obsreved=True),
            "calendars.CAL-BH-EST.holidays.obsreved: unknown key `obsreved` (did you mean `observed`?)",
        ),
        # channels, tiers, tickets, email, sources
        (
            lambda d: d["channels"]["sales"].update(alias=["sales"]),
            "channels.sales.alias: unknown key `alias` (did you mean `aliases`?)",
        ),
        (
            lambda d: d["tiers"].update(priorty_plans=["plan_2"]),
            "tiers.priorty_plans: unknown key `priorty_plans` (did you mean `priority_plans`?)",
        ),
        (
            lambda d: d["tickets"].update(pausing_status=["pending"]),
            "tickets.pausing_status: unknown key `pausing_status` (did you mean `pausing_statuses`?)",
        ),
        (
            lambda d: d.update(email={"suport_domains": ["example.org"]}),
            "email.suport_domains: unknown key `suport_domains` (did you mean `support_domains`?)",
        ),
        (
            lambda d: d["sources"]["000"].update(titel="x"),
            "sources.000.titel: unknown key `titel` (did you mean `title`?)",
        ),
        # a rule's own fields, its source, scope and target
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(calender=rule(d, "SUP-TECH-PRIO").pop("calendar")),
            "rules.SUP-TECH-PRIO.calender: unknown key `calender` (did you mean `calendar`?)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO")["source"].update(qoute="x"),
            "rules.SUP-TECH-PRIO.source.qoute: unknown key `qoute` (did you mean `quote`?)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO")["applies_to"].update(teir="priority"),
            "rules.SUP-TECH-PRIO.applies_to.teir: unknown key `teir` (did you mean `tier`?)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(target={"hour": 4}),
            "rules.SUP-TECH-PRIO.target.hour: unknown key `hour` in a target (did you mean `hours`?)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(target={"fortnights": 1}),
            "rules.SUP-TECH-PRIO.target.fortnights: unknown key `fortnights` in a target "
            "(expected one of days, expectation, hours, minutes, seconds, working_days, years)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(target={"hours": 4, "expectation": {"hours": 2, "minuts": 5}}),
            "rules.SUP-TECH-PRIO.target.expectation.minuts: unknown key `minuts` in an expectation (did you mean `minutes`?)",
        ),
        # settings: the common one on every kind, and one kind's own
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(settings={"met_min_adherance_pct": 95}),
            "rules.SUP-TECH-PRIO.settings.met_min_adherance_pct: unknown key `met_min_adherance_pct` in the settings of a "
            "first_response rule (did you mean `met_min_adherence_pct`?)",
        ),
        (
            lambda d: rule(d, "ESC-REVIEW")["settings"].update(binding_plans=None, binding_plan=["plan_1"]),
            "rules.ESC-REVIEW.settings.binding_plan: unknown key `binding_plan` in the settings of a senior_review rule "
            "(did you mean `binding_plans`?)",
        ),
        (
            lambda d: rule(d, "PRIV-COMPLETE")["settings"].update(roll_forward_closed_day=True),
            "rules.PRIV-COMPLETE.settings.roll_forward_closed_day: unknown key `roll_forward_closed_day` in the settings of a "
            "privacy_completion rule (did you mean `roll_forward_closed_days`?)",
        ),
        (
            lambda d: rule(d, "RET-BILLING")["settings"].update(minimisation_grace=90),
            "rules.RET-BILLING.settings.minimisation_grace: unknown key `minimisation_grace` in the settings of a "
            "retention_minimum rule (did you mean `minimisation_grace_days`?)",
        ),
    ],
)
def test_misspelled_key_is_refused_with_path_and_suggestion(tmp_path, edit, expected):
    assert problem(tmp_path, edited(edit)) == expected


def test_categories_is_refused_because_nothing_reads_it(tmp_path):
    message = problem(tmp_path, edited(lambda d: d.update(categories={"billing": ["invoice"]})))
    assert message.startswith("categories: unknown key `categories` (expected one of calendars, channels, email,")


def test_a_rule_without_id_is_named_by_its_position(tmp_path):
    def edit(d):
        d["rules"][1].pop("id")
        d["rules"][1]["calender"] = "CAL-247"

    assert problem(tmp_path, edited(edit)) == "rules[1].calender: unknown key `calender` (did you mean `calendar`?)"


# --- a key of one kind on another kind ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda d: rule(d, "PRIV-COMPLETE")["settings"].update(extension_days=60),
            "rules.PRIV-COMPLETE.settings.extension_days: unknown key `extension_days` in the settings of a privacy_completion "
            "rule (only for kind privacy_extension)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(settings={"binding_plans": ["plan_1"]}),
            "rules.SUP-TECH-PRIO.settings.binding_plans: unknown key `binding_plans` in the settings of a first_response rule "
            "(only for kind senior_review)",
        ),
        (
            lambda d: rule(d, "ESC-REVIEW")["settings"].update(data_class="account_data"),
            "rules.ESC-REVIEW.settings.data_class: unknown key `data_class` in the settings of a senior_review rule (only for "
            "kind retention_after_closure, retention_workspace_lifetime, retention_minimum, retention_maximum_age)",
        ),
        (
            lambda d: rule(d, "RET-ACCOUNT")["settings"].update(minimisation_grace_days=10),
            "rules.RET-ACCOUNT.settings.minimisation_grace_days: unknown key `minimisation_grace_days` in the settings of a "
            "retention_after_closure rule (only for kind retention_minimum)",
        ),
        (
            lambda d: d["calendars"]["CAL-247"].update(hours={"mon": [["09:00", "17:00"]]}),
            "calendars.CAL-247.hours: unknown key `hours` in an always_open calendar (only for kind business_hours)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"].update(days=["mon"]),
            "calendars.CAL-BH-EST.days: unknown key `days` in a business_hours calendar (only for kind working_days)",
        ),
    ],
)
def test_a_key_of_one_kind_is_refused_on_another(tmp_path, edit, expected):
    assert problem(tmp_path, edited(edit)) == expected


def test_keys_added_by_issue_13_are_accepted_on_their_kind(tmp_path):
    def edit(d):
        d["urgency_negations"] = ["不", "not"]
        d["tickets"]["solved_statuses"] = ["solved", "closed"]
        rule(d, "ESC-REVIEW")["settings"]["unknown_plan_binding"] = True
        rule(d, "PRIV-COMPLETE")["settings"].update(
            day_counting="calendar_month",
            calendar_months=1,
            controller_timezone="Europe/Dublin",
            met_min_adherence_pct=95,
        )
        rule(d, "PRIV-EXTEND")["settings"]["extension_months"] = 2
        rule(d, "PRIV-TYPES")["settings"]["request_types"] = ["erasure", "access"]

    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(edited(edit), allow_unicode=True), encoding="utf-8")
    loaded = load_policy(path)
    assert loaded.rule("PRIV-COMPLETE").setting("calendar_months") == 1
    assert loaded.rule("ESC-REVIEW").setting("unknown_plan_binding") is True


# --- wrong values: one line naming path and problem -------------------------------------------------------------


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            lambda d: rule(d, "PRIV-COMPLETE")["settings"].update(day_counting="calendar_months"),
            "rules.PRIV-COMPLETE.settings.day_counting: unknown day counting 'calendar_months' (did you mean `calendar_month`?)",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(kind="first_reponse"),
            "rules.SUP-TECH-PRIO.kind: unknown rule kind 'first_reponse' (did you mean `first_response`?)",
        ),
        (
            lambda d: d["calendars"]["CAL-247"].update(kind="always"),
            "calendars.CAL-247.kind: unknown calendar kind 'always' (did you mean `always_open`?)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["hours"].update(mon=[["09:00", 1020]]),
            "calendars.CAL-BH-EST.hours.mon[0][1]: expected a string, got the number 1020 "
            "(quote it: YAML reads some unquoted values, such as 17:00 or 000, as numbers)",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["hours"].update(mon=[["09:00"]]),
            'calendars.CAL-BH-EST.hours.mon[0]: expected a pair [open, close] such as ["09:00", "17:00"], got the list [\'09:00\']',
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["holidays"].update(extra=["2026-1-1"]),
            "calendars.CAL-BH-EST.holidays.extra[0]: expected a date YYYY-MM-DD, got the string '2026-1-1'",
        ),
        (
            lambda d: d["calendars"]["CAL-BH-EST"]["holidays"].update(country=False),
            "calendars.CAL-BH-EST.holidays.country: expected a string, got false "
            "(quote it: YAML reads an unquoted yes/no/on/off as true/false)",
        ),
        (
            lambda d: d["tickets"].update(reopen_starts_new_cycle="no"),
            "tickets.reopen_starts_new_cycle: expected true or false, got the string 'no'",
        ),
        (
            lambda d: d["verdict"].update(met_min_adherence_pct=120),
            "verdict.met_min_adherence_pct: must be a number between 0 and 100, got 120",
        ),
        (
            lambda d: rule(d, "SUP-TECH-PRIO").update(target={"hours": 4, "expectation": {"hours": "two"}}),
            "rules.SUP-TECH-PRIO.target.expectation.hours: expected a number, got the string 'two'",
        ),
        (
            lambda d: rule(d, "PRIV-EXTEND")["settings"].update(extension_days=0),
            "rules.PRIV-EXTEND.settings.extension_days: must be a positive number, got 0",
        ),
        (lambda d: rule(d, "RET-BACKUP").pop("settings"), "rules.RET-BACKUP.settings: missing"),
        (
            lambda d: rule(d, "RET-BACKUP")["settings"].pop("data_class"),
            "rules.RET-BACKUP.settings.data_class: missing",
        ),
        (lambda d: d.update(plans="free"), "plans: expected a list, got the string 'free'"),
        (lambda d: d["rules"][0].pop("id"), "rules[0].id: missing"),
    ],
)
def test_a_wrong_value_is_one_line_naming_path_and_problem(tmp_path, edit, expected):
    assert problem(tmp_path, edited(edit)) == expected


def test_the_first_error_is_an_unknown_key_then_the_shallowest(tmp_path):
    def misspelled_source(d):
        d["rules"][0]["sorce"] = d["rules"][0].pop("source")  # also makes `source` missing

    assert (
        problem(tmp_path, edited(misspelled_source))
        == "rules.SUP-ACCT-STD.sorce: unknown key `sorce` (did you mean `source`?)"
    )

    def two_misspellings_and_a_type_error(d):
        d["plans"] = "free"
        rule(d, "SUP-ACCT-STD")["target"]["hour"] = 1
        d["tickets"]["pausing_status"] = []

    assert problem(tmp_path, edited(two_misspellings_and_a_type_error)) == (
        "tickets.pausing_status: unknown key `pausing_status` (did you mean `pausing_statuses`?)"
    )


def test_unquoted_yaml_dates_and_empty_optional_keys_are_accepted(tmp_path):
    text = (POLICY_DIR / "platform.yaml").read_text(encoding="utf-8")
    text = text.replace("extra: []             #", "extra: [2026-12-24]   #").replace(
        "plans: [free, plan_1, plan_2, plan_3]", "plans:"
    )
    text = text.replace("priority_plans: [plan_2, plan_3]", "priority_plans:")
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = load_policy(path)
    assert loaded.calendars["CAL-BH-EST"].extra_closed_dates == frozenset({date(2026, 12, 24)})
    assert loaded.plans == ()


# --- the calendar parser speaks the schema's language ---------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping, message",
    [
        (
            {"kind": "business_hours", "timezone": "UTC", "hours": {"Mon": [["09:00", "17:00"]]}},
            "calendars.X.hours.Mon: unknown weekday `Mon` (did you mean `mon`?)",
        ),
        (
            {"kind": "working_days", "timezone": "UTC", "days": ["Monday"]},
            "calendars.X.days[0]: unknown weekday 'Monday' (did you mean `monday`?)",
        ),
        (
            {"kind": "business_hours", "timezone": "UTC", "hours": {"mon": [["09:00", "17:00"]]}, "holiday": {}},
            "calendars.X.holiday: unknown key `holiday` (did you mean `holidays`?)",
        ),
        (
            {
                "kind": "business_hours",
                "timezone": "UTC",
                "hours": {"mon": [["09:00", "17:00"]]},
                "holidays": {"contry": "US"},
            },
            "calendars.X.holidays.contry: unknown key `contry` (did you mean `country`?)",
        ),
    ],
)
def test_calendar_parser_refuses_what_the_schema_refuses(mapping, message):
    with pytest.raises(CalendarError) as error:
        CalendarSpec.from_mapping("X", mapping)
    assert str(error.value) == message
    with pytest.raises(ValidationError):
        Draft202012Validator(DEFS["calendar"] | {"$defs": DEFS}).validate(mapping)


# --- the schema and the code read the same keys -------------------------------------------------------------------


def _properties(schema: dict) -> set[str]:
    return set(schema["properties"])


def _settings_keys_in_schema() -> set[str]:
    return set().union(*(_properties(DEFS[f"settings_{kind}"]) for kind in RULE_KINDS))


def _settings_keys_read_by_code() -> set[str]:
    read = set()
    for folder in CODE_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            read |= set(re.findall(r"\.setting\(\s*[\"'](\w+)[\"']", path.read_text(encoding="utf-8")))
    return read | _literal_reads(policy_module, "_parse_settings", "raw")


def _literal_reads(module, function: str, variable: str) -> set[str]:
    """String keys a function reads from one of its mappings: ``_require(v, "k")``, ``v.get("k")``, ``v["k"]``,
    ``"k" in v`` (and ``_optional`` / ``_string_list``)."""
    return _all_literal_reads(module).get((function, variable), set())


def _all_literal_reads(module) -> dict[tuple[str, str], set[str]]:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    reads: dict[tuple[str, str], set[str]] = {}
    parsers = (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("_parse"))
    for function in parsers:
        for node in ast.walk(function):
            found = None
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name):
                name = node.func.id if isinstance(node.func, ast.Name) else None
                if name in {"_require", "_optional", "_string_list"} and len(node.args) > 1:
                    found = node.args[0].id, node.args[1]
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and isinstance(node.func.value, ast.Name)
                and node.args
            ):
                found = node.func.value.id, node.args[0]
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                found = node.value.id, node.slice
            if (
                isinstance(node, ast.Compare)
                and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and isinstance(node.comparators[0], ast.Name)
            ):
                found = node.comparators[0].id, node.left
            key = found[1].value if found and isinstance(found[1], ast.Constant) else None
            if isinstance(key, str) and re.fullmatch(r"\w+", key):  # a key, not a search for "@" in a string
                reads.setdefault((function.name, found[0]), set()).add(key)
    return reads


# Where each mapping the parser reads sits in the schema.
_PARSER_PLACES = {
    ("_parse", "document"): SCHEMA,
    ("_parse", "verdict"): SCHEMA["properties"]["verdict"],
    ("_parse", "report"): SCHEMA["properties"]["report"],
    ("_parse", "spec"): SCHEMA["properties"]["channels"]["additionalProperties"],
    ("_parse", "tiers_raw"): SCHEMA["properties"]["tiers"],
    ("_parse_email", "raw"): SCHEMA["properties"]["email"],
    ("_parse_rule", "raw"): DEFS["rule"],
    ("_parse_rule", "source"): DEFS["rule"]["properties"]["source"],
    ("_parse_rule", "applies_to"): DEFS["rule"]["properties"]["applies_to"],
    ("_parse_target", "raw"): DEFS["target"],
    ("_parse_target", "expectation"): DEFS["target"]["properties"]["expectation"],
    ("_parse_settings", "spec"): DEFS["settings_information_completeness"]["properties"]["required_information"][
        "additionalProperties"
    ],
}


def _parser_reads() -> dict[tuple[str, str], set[str]]:
    reads = _all_literal_reads(policy_module)
    for place in (("_parse_target", "raw"), ("_parse_target", "expectation")):  # the units, through _TARGET_UNITS
        reads[place] = reads.get(place, set()) | set(policy_module._TARGET_UNITS)
    return reads


def test_every_key_the_policy_parser_reads_is_in_the_schema():
    reads = _parser_reads()
    unmapped = set(reads) - set(_PARSER_PLACES) - {("_parse_settings", "raw")}  # settings: the test below
    assert not unmapped, f"the parser reads mappings this test does not place in the schema: {unmapped}"
    for place, schema in _PARSER_PLACES.items():
        assert reads.get(place, set()) <= _properties(schema), place


def test_every_key_of_the_schema_is_read_by_the_parser():
    reads = _parser_reads()
    unread = {place: _properties(schema) - reads.get(place, set()) for place, schema in _PARSER_PLACES.items()}
    assert unread.pop(("_parse", "document")) <= TOP_LEVEL_READ_BY_PARALLEL_WORK
    assert not any(unread.values()), unread


def test_settings_keys_read_by_the_code_and_allowed_by_the_schema_agree():
    in_schema, read = _settings_keys_in_schema(), _settings_keys_read_by_code()
    assert read <= in_schema, f"settings the code reads that the schema refuses: {read - in_schema}"
    assert in_schema - read <= SETTINGS_READ_BY_PARALLEL_WORK, f"settings no code reads: {in_schema - read}"
    for kind in RULE_KINDS:
        assert "met_min_adherence_pct" in _properties(DEFS[f"settings_{kind}"]), kind


def test_ticket_settings_calendar_keys_and_enums_agree_with_the_code():
    assert _properties(SCHEMA["properties"]["tickets"]) == set(ticket_clocks.DEFAULT_TICKET_SETTINGS)
    calendar_keys = set().union(*(_properties(DEFS[f"calendar_{kind}"]) for kind in calendars.KINDS))
    assert calendar_keys == calendar_parsing._TOP_KEYS
    assert _literal_reads(calendar_parsing, "_parse_calendar", "mapping") <= calendar_keys
    assert _properties(DEFS["holidays"]) == calendar_parsing._HOLIDAY_KEYS
    assert _literal_reads(calendar_parsing, "_parse_calendar", "hol") <= calendar_parsing._HOLIDAY_KEYS
    assert list(DEFS["calendar_business_hours"]["properties"]["hours"]["properties"]) == list(calendars.WEEKDAYS)
    assert DEFS["calendar_working_days"]["properties"]["days"]["items"]["enum"] == [
        *calendars.WEEKDAYS,
        *calendar_parsing._LONG_DAYS,
    ]
    assert DEFS["rule"]["properties"]["kind"]["enum"] == list(RULE_KINDS)
    assert DEFS["rule"]["properties"]["domain"]["enum"] == [*rule_kinds.DOMAINS, None]
    assert DEFS["calendar"]["properties"]["kind"]["enum"] == list(calendars.KINDS)
    kinds_with_settings = [branch["if"]["properties"]["kind"]["const"] for branch in DEFS["rule"]["allOf"]]
    assert kinds_with_settings == list(RULE_KINDS)


@pytest.mark.parametrize("profile", ["platform", "email-support"])
def test_a_shipped_policy_with_every_key_misspelled_in_turn_is_refused(profile):
    """Walks a shipped policy: renaming any fixed key (one at a time) to a misspelling is refused, naming it."""
    document = yaml.safe_load((POLICY_DIR / f"{profile}.yaml").read_text(encoding="utf-8"))
    maps_of_names = {"calendars", "channels", "sources", "urgency_keywords", "required_information"}
    places = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, value in node.items():
                if not (path and path[-1] in maps_of_names):
                    places.append((*path, key))
                walk(value, [*path, key])
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, [*path, index])

    walk(document, [])
    # A key of a rule once per rule kind: the schema of a rule depends on its kind only (and it keeps this quick).
    shapes = {}
    for place in places:
        shape = (document["rules"][place[1]]["kind"], place[2:]) if place[0] == "rules" and len(place) > 2 else place
        shapes.setdefault(shape, place)
    for place in shapes.values():
        broken = copy.deepcopy(document)
        parent = broken
        for part in place[:-1]:
            parent = parent[part]
        parent[f"{place[-1]}x"] = parent.pop(place[-1])
        # The schema step of load_policy alone (the file-naming wrapper is tested above; the calendars' holiday
        # look-ups would make this walk slow).
        with pytest.raises(policy_module._KeyProblem) as error:
            policy_module._check_against_schema(broken)
        assert f"unknown key `{place[-1]}x`" in str(error.value), (place, str(error.value))
