"""The hard invariant as a PostgreSQL constraint: no two leases of one number overlap in time.

The hand-out keeps it by construction (see ringpools.handout); this makes the database refuse any
write that would break it. PostgreSQL only: the SQLite demo serialises writers instead.
"""

from django.db import migrations

from config.migration_sql import on_postgres

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gist",
    """ALTER TABLE ringpools_lease ADD CONSTRAINT lease_number_not_held_twice
       EXCLUDE USING gist (number_id WITH =, tstzrange(started_at, expires_at, '[)') WITH &&)""",
]
BACKWARD = ["ALTER TABLE ringpools_lease DROP CONSTRAINT IF EXISTS lease_number_not_held_twice"]


class Migration(migrations.Migration):
    dependencies = [("ringpools", "0001_initial")]
    operations = [migrations.RunPython(on_postgres(FORWARD), on_postgres(BACKWARD))]
