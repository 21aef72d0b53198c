"""Adding and removing people's labels, with the checks a form or a command needs."""
from django.db import transaction

from labels.models import NAME_MAX, Label, normalise

PER_REQUEST_MAX = 20


class LabelError(ValueError):
    """A label name that cannot be stored; the message says which and why."""


def clean_names(text):
    """Comma-separated names from a form field -> distinct normalised names, or LabelError."""
    names = []
    for raw in (text or "").split(","):
        name = normalise(raw)
        if not name:
            continue
        if len(name) > NAME_MAX:
            raise LabelError(f"label {name[:20]!r}...: at most {NAME_MAX} characters")
        if any(ord(c) < 32 for c in name):
            raise LabelError(f"label {name!r}: control characters are not allowed")
        if name not in names:
            names.append(name)
    if not names:
        raise LabelError("label: give at least one name (several separated by commas)")
    if len(names) > PER_REQUEST_MAX:
        raise LabelError(f"label: at most {PER_REQUEST_MAX} names at once")
    return names


def add(image_ids, names, user):
    """Put each label on each image; labels already there stay as they were (first author kept)."""
    rows = [Label(image_id=pk, name=name, user=user) for pk in image_ids for name in names]
    with transaction.atomic():
        Label.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)


def remove(image_ids, names):
    return Label.objects.filter(image_id__in=list(image_ids), name__in=list(names)).delete()[0]


def of_image(image_id):
    return list(Label.objects.filter(image_id=image_id).select_related("user").order_by("name"))
