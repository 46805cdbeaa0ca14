"""What the project's migrations share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def on_postgres(statements: Sequence[str]) -> Callable[[Any, Any], None]:
    """A RunPython step that runs these SQL statements on PostgreSQL and does nothing elsewhere (the
    SQLite demo has no exclusion constraints, triggers or expression indexes of this kind)."""

    def apply(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return apply
