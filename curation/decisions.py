"""Who decides an image's fate: the one rule, applied by every stage that sets an automatic decision.

1. A person's decision beats everything: final_decision is the human decision whenever there is one.
2. Among the stages, the ranked `Image.auto_stage` decides (AutoStage in curation/models.py): a stage
   may replace the automatic decision of a stage ranked at or below its own, never one above. So a
   copy of a seed or a near-duplicate stays rejected whatever CLIP or the VLM say, and the VLM (the
   later pipeline stage) is not overwritten by a CLIP rerun. A stage with no verdict (a VLM error)
   writes nothing.
3. A stage can release its own decisions (a near-duplicate that is no longer one): those images get
   the decision the caller derives from the stages below, or none.

The rule runs inside the database, in one UPDATE per chunk, so a decision another process writes
meanwhile is read under the row lock, not from a stale copy.
"""
from django.db import connection, transaction

from curation.models import AutoStage, Decision, FilterScore, Image

CHUNK = 2000


def may_replace(current_stage, stage):
    """Whether `stage` may set the automatic decision of an image whose decision `current_stage` made."""
    return current_stage is None or current_stage <= stage


def decide(stage, rows, *, extra_fields=()):
    """Set the automatic decision of each row ({"id", "decision", "reason"} plus `extra_fields`) as made by
    `stage`, where the rule allows. `extra_fields` (scores) are written whatever the rule says."""
    stage = AutoStage(stage)
    rows = [{**row, "stage": stage.value} for row in rows]
    guard = f"({{table}}.auto_stage IS NULL OR {{table}}.auto_stage <= {stage.value})"
    return _write(rows, guard, list(extra_fields), lambda current: may_replace(current, stage))


def release(stage, rows):
    """Images whose automatic decision `stage` made, and that no longer deserve it, get the decision in
    their row ({"id", "decision", "reason", "stage"}: from a lower stage, or all None to clear)."""
    stage = AutoStage(stage)
    guard = f"{{table}}.auto_stage = {stage.value}"
    return _write(list(rows), guard, [], lambda current: current == stage)


def back_to_clip(ids, note=""):
    """Release rows for `ids`: each image's latest CLIP verdict (the stage below the others), or none."""
    latest = {}
    for image_id, passed, key in (FilterScore.objects.filter(image_id__in=list(ids)).order_by("image_id", "-id")
                                  .values_list("image_id", "passed", "scorer_key")):
        latest.setdefault(image_id, (passed, key))
    rows = []
    for pk in ids:
        if pk in latest:
            passed, key = latest[pk]
            rows.append({"id": pk, "decision": Decision.KEEP if passed else Decision.REJECT, "stage": AutoStage.CLIP,
                         "reason": f"clip: {'passed' if passed else 'failed'} under {key}{note}"})
        else:
            rows.append({"id": pk, "decision": None, "reason": "", "stage": None})
    return rows


def _write(rows, guard, extra_fields, allowed):
    if not rows:
        return 0
    if connection.vendor in ("postgresql", "sqlite"):
        return sum(_update_from_values(rows[i:i + CHUNK], guard, extra_fields) for i in range(0, len(rows), CHUNK))
    return _update_each(rows, extra_fields, allowed)


def decide_table(stage, source, columns):
    """decide() for rows already in a table (a temporary one that a bulk COPY filled, for a million
    rows at a time): `source` has columns id, decision and reason; `columns` maps each extra Image field
    to an SQL expression over it, aliased v (e.g. {"clip_indoor_margin": "v.indoor"})."""
    stage = AutoStage(stage)
    guard = f"({{table}}.auto_stage IS NULL OR {{table}}.auto_stage <= {stage.value})"
    ref = {"id": "v.id", "decision": "v.decision", "reason": "v.reason", "stage": str(stage.value), **columns}
    with connection.cursor() as cursor:
        cursor.execute(_rule_update(guard, ref, list(columns), f"{connection.ops.quote_name(source)} AS v"))
        return cursor.rowcount


def _rule_update(guard, ref, extra_fields, source):
    """The rule as one UPDATE of the images joined to `source`; `ref` names each value in it."""
    q = connection.ops.quote_name
    table = q(Image._meta.db_table)
    guard = guard.format(table=table)
    new_decision = f"CASE WHEN {guard} THEN {ref['decision']} ELSE {table}.auto_decision END"
    values = {
        "auto_decision": new_decision,
        "auto_reason": f"CASE WHEN {guard} THEN {ref['reason']} ELSE {table}.auto_reason END",
        "auto_stage": f"CASE WHEN {guard} THEN {ref['stage']} ELSE {table}.auto_stage END",
        "final_decision": f"COALESCE({table}.human_decision, {new_decision})",
        **{q(Image._meta.get_field(name).column): ref[name] for name in extra_fields},
    }
    sets = ", ".join(f"{column} = {value}" for column, value in values.items())
    # Rows that would not change are left alone: a rerun, or new margins that flip a few decisions out
    # of a million, rewrites those few rows and their index entries, not every one.
    differs = " IS DISTINCT FROM " if connection.vendor == "postgresql" else " IS NOT "
    changed = " OR ".join(f"{table}.{column}{differs}{value}" for column, value in values.items())
    return f"UPDATE {table} SET {sets} FROM {source} WHERE {table}.id = {ref['id']} AND ({changed})"


def _update_from_values(rows, guard, extra_fields):
    fields = [Image._meta.get_field(name) for name in ("id", "auto_decision", "auto_reason", "auto_stage",
                                                       *extra_fields)]
    keys = ["id", "decision", "reason", "stage", *extra_fields]
    if connection.vendor == "postgresql":
        placeholder = "(" + ", ".join(f"%s::{f.db_type(connection)}" for f in fields) + ")"
        alias = f"v({', '.join(keys)})"
        ref = {key: f"v.{key}" for key in keys}
    else:  # SQLite names VALUES columns column1, column2, ...
        placeholder = "(" + ", ".join(["%s"] * len(keys)) + ")"
        alias = "v"
        ref = {key: f"v.column{n + 1}" for n, key in enumerate(keys)}
    params = [row.get(key) if key != "reason" else (row.get("reason") or "")[:500] for row in rows for key in keys]
    sql = _rule_update(guard, ref, extra_fields, f"(VALUES {', '.join([placeholder] * len(rows))}) AS {alias}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _update_each(rows, extra_fields, allowed):
    """Other databases: the same rule row by row, under row locks."""
    done = 0
    with transaction.atomic():
        by_id = {row["id"]: row for row in rows}
        for image in Image.objects.select_for_update().filter(pk__in=list(by_id)).order_by("pk"):
            row = by_id[image.pk]
            if allowed(image.auto_stage):
                image.auto_decision, image.auto_reason = row["decision"], (row.get("reason") or "")[:500]
                image.auto_stage = row["stage"]
            for name in extra_fields:
                setattr(image, name, row[name])
            image.final_decision = image.human_decision or image.auto_decision
            image.save(update_fields=["auto_decision", "auto_reason", "auto_stage", "final_decision", *extra_fields])
            done += 1
    return done
