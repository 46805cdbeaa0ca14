"""What the benchmarks share. They run as scripts (`python bench/<name>.py`), so this folder is on
their import path."""

from __future__ import annotations


def recreate_database(url: str) -> None:
    """Drop and create the benchmark's own database (never the app's: each script names its own)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
