"""ScalingEvent is an audit trail: on PostgreSQL the database itself refuses UPDATE and DELETE."""

from django.db import migrations

from config.migration_sql import on_postgres

FORWARD = [
    """CREATE OR REPLACE FUNCTION scaling_event_append_only() RETURNS trigger AS $$
       BEGIN RAISE EXCEPTION 'scaling events are append-only'; END; $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER scaling_event_append_only BEFORE UPDATE OR DELETE ON scaling_scalingevent
       FOR EACH ROW EXECUTE FUNCTION scaling_event_append_only()""",
]
BACKWARD = [
    "DROP TRIGGER IF EXISTS scaling_event_append_only ON scaling_scalingevent",
    "DROP FUNCTION IF EXISTS scaling_event_append_only()",
]


class Migration(migrations.Migration):
    dependencies = [("scaling", "0001_initial")]
    operations = [migrations.RunPython(on_postgres(FORWARD), on_postgres(BACKWARD))]
