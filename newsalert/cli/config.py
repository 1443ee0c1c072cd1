"""`newsalert config --table`: every setting with its environment variable, default and meaning,
read from the settings model. deploy/README.md carries its output; a test keeps the copy current.
"""

from __future__ import annotations

import argparse
import json
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from newsalert.settings import ENV_PREFIX, Settings

# Not a field: load_settings reads it when no --config is given.
CONFIG_FILE_VARIABLE = f"{ENV_PREFIX}CONFIG"


@dataclass(frozen=True)
class SettingRow:
    name: str  # dotted, as in the config file: smtp.password
    env: str  # NEWSALERT_SMTP__PASSWORD
    default: Any
    meaning: str
    secret: bool
    structured: bool  # a list or mapping: JSON in the environment


def setting_rows(model: type[BaseModel] = Settings, path: str = "") -> list[SettingRow]:
    """One row per setting, nested models (smtp, spike) expanded into their fields, in the
    model's order; environment names as pydantic-settings reads them (prefix, ``__`` nesting)."""
    rows = []
    for name, field in model.model_fields.items():
        dotted = f"{path}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.extend(setting_rows(annotation, f"{dotted}."))
            continue
        rows.append(
            SettingRow(
                name=dotted,
                env=ENV_PREFIX + dotted.upper().replace(".", "__"),
                default=field.default,
                meaning=field.description or "",
                secret=is_secret(field),
                structured=_is_structured(annotation),
            )
        )
    return rows


def setting_env_names() -> set[str]:
    """Every NEWSALERT_* variable the settings read."""
    return {row.env for row in setting_rows()} | {CONFIG_FILE_VARIABLE}


def secret_env_names() -> set[str]:
    """The variables whose value is or holds a secret: never written inline in a deployment."""
    return {row.env for row in setting_rows() if row.secret}


def is_secret(field: FieldInfo) -> bool:
    extra = field.json_schema_extra
    flagged = isinstance(extra, dict) and extra.get("secret") is True
    return flagged or _holds_secret(field.annotation)


def _holds_secret(annotation: Any, seen: frozenset[type] = frozenset()) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        return any(
            _holds_secret(f.annotation, seen | {annotation})
            for f in annotation.model_fields.values()
        )
    return any(_holds_secret(arg, seen) for arg in typing.get_args(annotation))


def _is_structured(annotation: Any) -> bool:
    origins = {typing.get_origin(arg) for arg in (annotation, *typing.get_args(annotation))}
    return bool(origins & {tuple, list, dict})


def format_default(row: SettingRow) -> str:
    if row.secret:
        return "(secret)"
    value = row.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple | list | dict):
        shown = json.dumps(
            [int(v) if isinstance(v, float) and v.is_integer() else v for v in value]
            if isinstance(value, tuple | list)
            else value
        )
        return f"`{shown}`"
    if isinstance(value, Path):
        value = str(value)
    return f"`{value}`"


def markdown_table() -> str:
    lines = [
        "| setting | environment variable | default | meaning |",
        "| --- | --- | --- | --- |",
        f"| (config file) | `{CONFIG_FILE_VARIABLE}` | unset | the YAML config file, when "
        "`--config` is not given |",
    ]
    for row in setting_rows():
        env = f"`{row.env}`" + (" (JSON)" if row.structured else "")
        meaning = row.meaning.replace("|", "\\|")
        if row.secret:
            meaning += "; a secret: give it by environment or secret store, never logged"
        lines.append(f"| `{row.name}` | {env} | {format_default(row)} | {meaning} |")
    return "\n".join(lines) + "\n"


def add_parser(commands: Any) -> None:
    config = commands.add_parser(
        "config",
        help="describe the settings: their environment variables, defaults and meanings",
        description="Print every setting from the settings model: its key in the config file, "
        "its NEWSALERT_* environment variable, its default (secrets have none shown) and what "
        "it means.",
    )
    shown = config.add_mutually_exclusive_group(required=True)
    shown.add_argument(
        "--table",
        action="store_true",
        help="as a Markdown table (the one in deploy/README.md)",
    )


def run_without_settings(args: argparse.Namespace) -> int:
    sys.stdout.write(markdown_table())
    return 0
