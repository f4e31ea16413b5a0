"""Vendor export adapters: each turns one vendor's export into the canonical files of the data contract.

Every adapter module exposes ``ADAPTER``, an :class:`compliance.adapters.base.Adapter`. The registry maps the
``--format`` names of ``compliance-report convert`` to those modules, imported only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the registry is read by `compliance-report --help`, which must not pay for polars
    from compliance.adapters.base import Adapter

FORMATS: dict[str, str] = {
    "zendesk": "compliance.adapters.zendesk",
    "jsm": "compliance.adapters.jsm",
    "freshdesk": "compliance.adapters.freshdesk",
    "servicenow": "compliance.adapters.servicenow",
    "pagerduty": "compliance.adapters.pagerduty",
    "statuspage": "compliance.adapters.statuspage",
    "open311": "compliance.adapters.open311",
    "mbox": "compliance.adapters.mbox",
    "mapping": "compliance.adapters.mapping",  # any CSV, with a --mapping FILE.yaml
}


def adapter_for(format_name: str) -> Adapter:
    """The adapter registered under ``format_name``; KeyError names the known formats."""
    try:
        module = FORMATS[format_name]
    except KeyError:
        raise KeyError(f"unknown format {format_name!r}; known formats: {', '.join(FORMATS)}") from None
    return import_module(module).ADAPTER
