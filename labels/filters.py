"""Gallery filters on people's labels and review notes."""
from django.db.models import Exists, OuterRef

from curation.gallery import FilterError, values
from curation.models import Review
from labels.models import NAME_MAX, Label, normalise

FIELDS = {
    "label": "a person put this label on the image (repeatable: all must match)",
    "note": "a review of the image has a note containing this text",
}


def apply(qs, qd):
    for raw in values(qd, "label"):
        name = normalise(raw)
        if len(name) > NAME_MAX:
            raise FilterError(f"label: at most {NAME_MAX} characters")
        qs = qs.filter(Exists(Label.objects.filter(name=name, image=OuterRef("pk"))))
    for text in values(qd, "note"):
        if len(text) > 200:
            raise FilterError("note: at most 200 characters")
        qs = qs.filter(Exists(Review.objects.filter(note__icontains=text, image=OuterRef("pk"))))
    return qs
