from django.db import migrations


def create(apps, schema_editor):
    # Postgres only: the tag filter is a jsonb containment test, which a GIN index answers.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS verdict_tags_gin ON vlm_vlmverdict USING gin (tags jsonb_path_ops)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS verdict_tags_gin")


class Migration(migrations.Migration):
    dependencies = [("vlm", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
