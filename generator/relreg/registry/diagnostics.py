"""Diagnostics: what every stage reports about a user's files.

A diagnostic always names a file, a line and a column (1-based), so that a
reporter can print `path:line:col` or annotate a pull request at that line.
Stages collect diagnostics instead of raising on the first problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str  # relative to the registry's parent folder, with forward slashes
    line: int
    column: int
    message: str
    rule: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "rule": self.rule,
            "message": self.message,
        }


def sorted_diagnostics(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Sort by file then position; drop exact duplicates."""
    return sorted(set(diagnostics))
