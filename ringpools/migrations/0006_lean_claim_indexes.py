"""Claims write less: the leases' pool and number keys are indexed by the composite indexes that lead
with them, pins by a partial index; one live lease per visitor is checked on a 64-bit hash of the
visitor id (PostgreSQL's hashtextextended) instead of the text, which GiST compares slowly.

Two visitors of one pool whose ids hash alike could not hold numbers at the same time: the second
would be answered "busy" and try again. With 64 bits, a pool with 100,000 live leases meets such a
pair about once in three billion rushes.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from config.migration_sql import on_postgres


VISITOR_BY_HASH = [
    "ALTER TABLE ringpools_lease DROP CONSTRAINT IF EXISTS lease_one_per_visitor",
    """ALTER TABLE ringpools_lease ADD CONSTRAINT lease_one_per_visitor
       EXCLUDE USING gist (pool_id WITH =, hashtextextended(visitor_id, 0) WITH =,
                           tstzrange(started_at, expires_at, '[)') WITH &&)""",
]
VISITOR_BY_TEXT = [
    "ALTER TABLE ringpools_lease DROP CONSTRAINT IF EXISTS lease_one_per_visitor",
    """ALTER TABLE ringpools_lease ADD CONSTRAINT lease_one_per_visitor
       EXCLUDE USING gist (pool_id WITH =, visitor_id WITH =,
                           tstzrange(started_at, expires_at, '[)') WITH &&)""",
]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_carrier_token_encrypted"),
        ("ringpools", "0005_handout_order"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="lease",
            name="number",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="leases",
                to="ringpools.promonumber",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="pool",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="leases",
                to="ringpools.ringpool",
            ),
        ),
        migrations.AlterField(
            model_name="promonumber",
            name="pinned_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="promonumber",
            index=models.Index(
                condition=models.Q(("pinned_by__isnull", False)),
                fields=["pinned_by"],
                name="promonumber_pinned_by",
            ),
        ),
        migrations.RunPython(on_postgres(VISITOR_BY_HASH), on_postgres(VISITOR_BY_TEXT)),
    ]
