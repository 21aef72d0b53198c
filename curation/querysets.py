"""Walking large querysets without holding them in memory, and reading the first rows of one cheaply."""
from django.db import connection, transaction


def id_chunks(qs, size):
    """Lists of up to `size` primary keys of `qs`, in id order. Each chunk is read after the caller has
    handled the one before, from the last id seen: rows that stop matching meanwhile (an image decided
    by the chunk before) are neither skipped nor visited twice."""
    qs = qs.order_by("pk")
    last = 0
    while True:
        ids = list(qs.filter(pk__gt=last).values_list("pk", flat=True)[:size])
        if not ids:
            return
        yield ids
        last = ids[-1]

SERIAL = "max_parallel_workers_per_gather"


def first_rows(qs, n):
    """The first `n` rows of an ordered queryset, read in two steps: their ids alone, then the rows by id.

    Asking for ids only lets Postgres answer the ordered walk from indexes (an index-only scan over the
    sort's index, index-only probes for the filters' EXISTS), so a selective filter over a million
    images reads a few thousand index entries instead of as many table rows; the second query reads
    just the `n` rows. Parallel workers are off for the walk: it stops after `n` matches, and the
    workers' start-up and their overshoot cost more than they save, all the more on a busy machine.
    """
    ids_query = qs.values_list("pk", flat=True)[:n]
    if connection.vendor != "postgresql":
        ids = list(ids_query)
    else:
        # Local to the transaction, and put back after: inside a request's (or a test's) transaction
        # the setting would otherwise last until that transaction ends.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT current_setting('{SERIAL}'), set_config('{SERIAL}', '0', true)")
            before = cursor.fetchone()[0]
            try:
                ids = list(ids_query)
            finally:
                cursor.execute(f"SELECT set_config('{SERIAL}', %s, true)", [before])
    return list(qs.filter(pk__in=ids)) if ids else []
