"""Per-row updates of many Image rows in one statement (scores and groups differ row by row).

Django's bulk_update builds a CASE WHEN per column, which grows quadratically with the batch; on
Postgres we send UPDATE ... FROM (VALUES ...) instead. Other databases use bulk_update.
"""
from django.db import connection, transaction

CHUNK = 2000


def update_rows(model, rows, fields, *, final_from_auto=False):
    """Write `fields` of each row (a dict with "id"). With final_from_auto, final_decision becomes
    human_decision if a person decided, else the new auto_decision: human decisions are never touched."""
    if not rows:
        return 0
    fields = list(fields)
    if connection.vendor == "postgresql":
        return _update_postgres(model, rows, fields, final_from_auto)
    return _update_generic(model, rows, fields, final_from_auto)


def _update_postgres(model, rows, fields, final_from_auto):
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    pk = meta.pk
    cols = [meta.get_field(name) for name in fields]
    names = [connection.ops.quote_name(pk.column)] + [connection.ops.quote_name(c.column) for c in cols]
    casts = [pk.db_type(connection)] + [_cast_type(c) for c in cols]
    placeholder = "(" + ", ".join(f"%s::{t}" for t in casts) + ")"
    sets = [f"{n} = v.{n}" for n in names[1:]]
    if final_from_auto:
        sets.append('"final_decision" = COALESCE(t."human_decision", v."auto_decision")')
    done = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        params = []
        for row in chunk:
            params.append(row["id"])
            params.extend(_db_value(c, row[c.name]) for c in cols)
        sql = (
            f"UPDATE {table} AS t SET {', '.join(sets)} "
            f"FROM (VALUES {', '.join([placeholder] * len(chunk))}) AS v({', '.join(names)}) "
            f"WHERE t.{names[0]} = v.{names[0]}"
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


def _update_generic(model, rows, fields, final_from_auto):
    by_id = {row["id"]: row for row in rows}
    with transaction.atomic():
        objs = list(model.objects.filter(pk__in=list(by_id)).only("pk", "human_decision") if final_from_auto
                    else (model(pk=i) for i in by_id))
        for obj in objs:
            for name in fields:
                setattr(obj, model._meta.get_field(name).attname, by_id[obj.pk][name])
            if final_from_auto:
                obj.final_decision = obj.human_decision or obj.auto_decision
        model.objects.bulk_update(objs, fields + (["final_decision"] if final_from_auto else []), batch_size=500)
    return len(objs)

