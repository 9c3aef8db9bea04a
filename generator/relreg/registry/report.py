"""Reporters: diagnostics as text for people, GitHub workflow commands, or JSON."""

from __future__ import annotations

import json
from typing import Callable

from relreg.registry.diagnostics import Diagnostic

FORMATS = ("text", "github", "json")


def _github_escape(text: str, *, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def text_report(diagnostics: list[Diagnostic], summary: str) -> str:
    lines = [f"{d.path}:{d.line}:{d.column}: {d.severity.value}: {d.message} [{d.rule}]" for d in diagnostics]
    lines.append(summary)
    return "\n".join(lines)


def github_report(diagnostics: list[Diagnostic], summary: str) -> str:
    lines = []
    for d in diagnostics:
        command = "error" if d.is_error else "warning"
        properties = (f"file={_github_escape(d.path, property_value=True)},line={d.line},col={d.column},"
                      f"title={_github_escape('relreg ' + d.rule, property_value=True)}")
        lines.append(f"::{command} {properties}::{_github_escape(d.message)}")
    lines.append(summary)
    return "\n".join(lines)


def json_report(diagnostics: list[Diagnostic], summary: str) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    return json.dumps({
        "ok": errors == 0,
        "summary": summary,
        "error_count": errors,
        "warning_count": len(diagnostics) - errors,
        "diagnostics": [d.to_dict() for d in diagnostics],
    }, indent=2, sort_keys=True)


REPORTERS: dict[str, Callable[[list[Diagnostic], str], str]] = {
    "text": text_report,
    "github": github_report,
    "json": json_report,
}
