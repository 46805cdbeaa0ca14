"""Migrating a database that holds plain carrier tokens encrypts them, and nothing is lost."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts import secrets

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("accounts", "0001_initial")]
AFTER = [("accounts", "0002_carrier_token_encrypted")]


def migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_plain_tokens_are_encrypted_by_the_migration_and_decrypted_back_by_its_reverse():
    migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_account (name, slug, timezone, auto_scaling_available, carrier_account_sid,"
            " carrier_auth_token, created_at) VALUES ('Old', 'old', 'UTC', %s, 'AC1', 'plain-old-token', %s)",
            [True, "2026-01-01T00:00:00+00:00"],
        )
    try:
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute("SELECT carrier_auth_token_encrypted FROM accounts_account WHERE slug = 'old'")
            (stored,) = cursor.fetchone()
        assert "plain-old-token" not in stored and secrets.decrypt(stored) == "plain-old-token"
        migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT carrier_auth_token FROM accounts_account WHERE slug = 'old'")
            assert cursor.fetchone() == ("plain-old-token",)
    finally:
        executor = MigrationExecutor(connection)
        migrate(executor.loader.graph.leaf_nodes())  # back to the latest state for the other tests
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM accounts_account WHERE slug = 'old'")
