"""Walking large querysets without holding them in memory."""


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
