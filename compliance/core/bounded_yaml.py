"""YAML a user hands the reporter (a policy, a ``--mapping`` file), read with PyYAML's safe loader within bounds.

A hostile file must end in one line naming it, never in a recursion error or a walk over billions of values.
"""

from __future__ import annotations

from typing import Any

import yaml

# The deepest nesting a file may have. The shipped profiles nest 6 levels; without a limit a hostile file of
# 20,000 nested brackets exhausts Python's recursion in the YAML composer (and later in the schema check).
MAX_DEPTH = 64
# The most values a file may hold once its aliases are expanded (the shipped profiles hold under 1,000). Aliases
# (``*name``) are allowed — yaml.safe_dump writes them for shared values — but a "billion laughs" document, whose
# aliases expand exponentially, would make every check of it walk every copy.
MAX_VALUES = 100_000


class RefusedYaml(yaml.composer.ComposerError):
    """YAML that a user file may not use (too deep, too large once expanded, a cyclic alias); ``problem`` says
    which and ``problem_mark`` where."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting values as a check of the document will see them (every alias expanded).

    Refuses, as :class:`RefusedYaml` with the line it is on: nesting deeper than :data:`MAX_DEPTH`, more than
    :data:`MAX_VALUES` values with aliases expanded, and an alias inside the value it names (a cycle).
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._values = 0  # composed so far, each alias counted as the values of what it names
        self._anchored_values: dict[str, int] = {}  # anchor -> values of its node, once composed

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self.anchors and event.anchor not in self._anchored_values:
                raise RefusedYaml(None, None, f"alias *{event.anchor} inside the value it names", event.start_mark)
            self._count(self._anchored_values.get(event.anchor, 0), event.start_mark)
            return super().compose_node(parent, index)
        event = self.peek_event()
        if self._depth >= MAX_DEPTH:
            raise RefusedYaml(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self._count(1, event.start_mark)
        values_before = self._values - 1
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if event.anchor is not None:
            self._anchored_values[event.anchor] = self._values - values_before
        return node

    def _count(self, values: int, mark) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise RefusedYaml(None, None, f"more than {MAX_VALUES:,} values once its aliases are expanded", mark)


def load_bounded_yaml(text: str) -> Any:
    """The one document of ``text``; raises :class:`RefusedYaml` (or another ``yaml.YAMLError``) on a bad one."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
