"""Per-row updates of many Image rows in one statement (scores and groups differ row by row).

Django's bulk_update builds a CASE WHEN per column, which grows quadratically with the batch; on
Postgres and SQLite (3.33+) we send UPDATE ... FROM (VALUES ...) instead. Other databases use
bulk_update.
"""
import sqlite3

from django.db import connection, transaction

CHUNK = 2000


def update_rows(model, rows, fields):
    """Write `fields` of each row (a dict with "id"). Decisions go through curation/decisions.py instead."""
    if not rows:
        return 0
    fields = list(fields)
    if connection.vendor == "postgresql":
        return _update_from_values(model, rows, fields, postgres=True)
    if connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 33):
        return _update_from_values(model, rows, fields, postgres=False)
    return _update_generic(model, rows, fields)


def _update_from_values(model, rows, fields, *, postgres):
    meta = model._meta
    q = connection.ops.quote_name
    table = q(meta.db_table)
    pk = meta.pk
    cols = [meta.get_field(name) for name in fields]
    names = [q(pk.column)] + [q(c.column) for c in cols]
    if postgres:  # typed placeholders and named VALUES columns
        casts = [pk.db_type(connection)] + [_cast_type(c) for c in cols]
        placeholder = "(" + ", ".join(f"%s::{t}" for t in casts) + ")"
        alias = f"v({', '.join(names)})"
        refs = [f"v.{n}" for n in names]
    else:  # SQLite names VALUES columns column1, column2, ...
        placeholder = "(" + ", ".join(["%s"] * len(names)) + ")"
        alias = "v"
        refs = [f"v.column{n + 1}" for n in range(len(names))]
    sets = [f"{n} = {r}" for n, r in zip(names[1:], refs[1:], strict=True)]
    done = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        params = []
        for row in chunk:
            params.append(row["id"])
            params.extend(_db_value(c, row[c.name]) for c in cols)
        sql = (
            f"UPDATE {table} SET {', '.join(sets)} "
            f"FROM (VALUES {', '.join([placeholder] * len(chunk))}) AS {alias} "
            f"WHERE {table}.{names[0]} = {refs[0]}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            done += cursor.rowcount
    return done


def _cast_type(field):
    return field.target_field.db_type(connection) if field.is_relation else field.db_type(connection)


def _db_value(field, value):
    if field.is_relation and hasattr(value, "pk"):
        return value.pk
    return value


def _update_generic(model, rows, fields):
    by_id = {row["id"]: row for row in rows}
    with transaction.atomic():
        objs = [model(pk=i) for i in by_id]
        for obj in objs:
            for name in fields:
                setattr(obj, model._meta.get_field(name).attname, by_id[obj.pk][name])
        model.objects.bulk_update(objs, fields, batch_size=500)
    return len(objs)

