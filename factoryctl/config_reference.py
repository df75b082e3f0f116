"""The factory.yaml reference table, generated from the schema so docs/factory-yaml.md cannot drift from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from factoryctl.config_schema import (
    ControllerSettings,
    FactoryFile,
    NodeEntry,
    PowerSettings,
    SchedulerSettings,
    SimSettings,
    SshDefaults,
)

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("(top level)", FactoryFile),
    ("ssh", SshDefaults),
    ("nodes.<node set>", NodeEntry),
    ("nodes.<node set>.sim", SimSettings),
    ("controller", ControllerSettings),
    ("scheduler", SchedulerSettings),
    ("power", PowerSettings),
)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "(see section)" if isinstance(field.default_factory, type) else "`{}`"
    if field.default is None:
        return "–"
    return f"`{field.default}`"


def render_reference() -> str:
    """Markdown tables: one per section, one row per key with its default and description."""
    out: list[str] = []
    for title, model in SECTIONS:
        out += [f"### `{title}`", "", "| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            out.append(f"| `{name}` | {_default(field)} | {field.description or ''} |")
        out.append("")
    return "\n".join(out)
