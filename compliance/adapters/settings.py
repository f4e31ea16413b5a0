"""A mapping file's ``settings:`` section: the readings a format lets its user choose (``--mapping FILE.yaml``).

Each adapter declares the settings it takes, with their allowed values and defaults (:class:`Setting`); a key the
format does not take, or a value outside the allowed ones, is refused with one line naming the file and the key.
The readings in force are stated in the conversion's notes by the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compliance.adapters.base import AdapterOptions
from compliance.adapters.value_overrides import mapping_problem, read_mapping_document, string_map


@dataclass(frozen=True)
class Setting:
    default: str | tuple[str, ...]
    choices: tuple[str, ...] = ()  # the allowed values of a one-value setting; empty: a list of text values
    help: str = ""


def format_settings(options: AdapterOptions, format_name: str, known: Mapping[str, Setting]) -> dict[str, Any]:
    """Every setting of ``known`` with its value: the --mapping file's ``settings:`` entry, else the default.

    A one-value setting (``choices``) is a lower-case text; a list setting is a tuple of stripped, lower-case texts
    (a single text is a list of one)."""
    raw: dict[str, Any] = {}
    if options.mapping:
        raw = string_map(options.mapping, "settings", read_mapping_document(options.mapping).get("settings"))
    unknown = [name for name in raw if name not in known]
    if unknown:
        raise mapping_problem(
            options.mapping,
            f"settings.{unknown[0]}",
            f"not a setting of --format {format_name} (known: {', '.join(known) or 'none'})",
        )
    values: dict[str, Any] = {}
    for name, setting in known.items():
        value = raw.get(name, setting.default)
        if setting.choices:
            text = str(value).strip().lower() if isinstance(value, (str, int, float, bool)) else None
            if text not in setting.choices:
                raise mapping_problem(
                    options.mapping, f"settings.{name}", f"must be one of {', '.join(setting.choices)}, not {value!r}"
                )
            values[name] = text
        else:
            listed = value if isinstance(value, (list, tuple)) else [value]
            if not all(isinstance(item, str) and item.strip() for item in listed):
                raise mapping_problem(options.mapping, f"settings.{name}", "must be a text or a list of texts")
            values[name] = tuple(item.strip().lower() for item in listed)
    return values
