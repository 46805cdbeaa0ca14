"""The hand-out order of SPEC §3.3 (rested numbers first, longest-serving first) and one live lease per
visitor and pool as a PostgreSQL constraint (the twin of 0002's "no number held twice").

"""

from datetime import timedelta

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

from config.migration_sql import on_postgres


def mark_rested(apps, schema_editor):
    # Numbers held or released within the cool-down are not rested yet; the hand-out flags them later.
    PromoNumber = apps.get_model("ringpools", "PromoNumber")
    grace = timedelta(seconds=getattr(settings, "RINGPOOL_HANDOUT_COOLDOWN_SECONDS", 900))
    PromoNumber.objects.filter(busy_until__gt=timezone.now() - grace).update(rested=False)


# Leases of one visitor that overlap (left by the race this constraint closes) are cut where the
# next one starts, so the constraint can be created on an existing database.
VISITOR_FORWARD = [
    """UPDATE ringpools_lease l SET expires_at = GREATEST(l.started_at, LEAST(l.expires_at, nxt.next_start))
       FROM (SELECT id, lead(started_at) OVER (PARTITION BY pool_id, visitor_id ORDER BY started_at, id)
                    AS next_start FROM ringpools_lease) nxt
       WHERE nxt.id = l.id AND nxt.next_start IS NOT NULL AND nxt.next_start < l.expires_at""",
    """ALTER TABLE ringpools_lease ADD CONSTRAINT lease_one_per_visitor
       EXCLUDE USING gist (pool_id WITH =, visitor_id WITH =,
                           tstzrange(started_at, expires_at, '[)') WITH &&)""",
]
VISITOR_BACKWARD = ["ALTER TABLE ringpools_lease DROP CONSTRAINT IF EXISTS lease_one_per_visitor"]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("ringpools", "0004_number_state_labels"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="promonumber",
            name="promonumber_handout",
        ),
        migrations.AddField(
            model_name="promonumber",
            name="rested",
            field=models.BooleanField(default=True, editable=False),
        ),
        migrations.RunPython(mark_rested, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="promonumber",
            index=models.Index(
                condition=models.Q(("rested", True), ("role", "rotating"), ("state", "active")),
                fields=["pool", "acquired_at", "id"],
                name="promonumber_handout_rested",
            ),
        ),
        migrations.AddIndex(
            model_name="promonumber",
            index=models.Index(
                condition=models.Q(("rested", False), ("role", "rotating"), ("state", "active")),
                fields=["pool", "busy_until", "id"],
                name="promonumber_handout_resting",
            ),
        ),
        migrations.RunPython(on_postgres(VISITOR_FORWARD), on_postgres(VISITOR_BACKWARD)),
    ]
