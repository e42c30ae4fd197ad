"""The CSV files users give (dataset and task manifests, lesion lists), read by one rule: cells
stripped, an empty cell is "none", a relative path is taken from the file's folder, and a
missing file, column or required cell is an error naming the file and the line."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from usbrain.errors import InputError


@dataclass(frozen=True)
class Row:
    """One data row: its ``line`` in the file (the header is line 1) and its ``cells`` by
    column, stripped ("" where the row has none)."""

    path: Path
    line: int
    cells: dict[str, str]

    def get(self, column: str) -> str:
        return self.cells.get(column, "")

    def file(self, column: str, required: bool = False) -> Path | None:
        """The cell of ``column`` as a path (relative ones from the file's folder); None if
        empty, which is an error if ``required``."""
        cell = self.get(column)
        if not cell:
            if required:
                raise InputError(f"{self.path}: line {self.line} has an empty {column!r} cell")
            return None
        return self.path.parent / cell  # an absolute cell stays absolute


def read_rows(path: str | Path, required: Sequence[str] = (), what: str = "manifest") -> list[Row]:
    """The rows of CSV ``path``, refusing a missing file or a missing ``required`` column
    (``what`` names the file in the error: "manifest", "lesion manifest" …)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise InputError(
                f"{path}: {what} has no {', '.join(map(repr, missing))} column "
                f"(columns: {', '.join(columns) or 'none'})"
            )
        return [
            Row(path, line, {k: (v or "").strip() for k, v in row.items() if k is not None})
            for line, row in enumerate(reader, start=2)
        ]
