"""What labels adds to curation: a gallery filter, a detail panel and two export fields."""
from django.db.models import Count, Prefetch

from curation import registry
from curation.models import Review
from labels import filters
from labels.edit import of_image
from labels.models import Label


def _panel(image):
    return {"image_id": image.pk, "labels": of_image(image.pk)}


def _export(image):
    return {
        "labels": sorted(label.name for label in image.labels.all()),
        "notes": [{"note": r.note, "by": r.user.get_username() if r.user else None, "decision": r.new,
                   "at": r.created_at.isoformat()} for r in image.noted_reviews],
    }


def _csv(row):
    return {"labels": "; ".join(row["labels"]), "notes": " | ".join(n["note"] for n in row["notes"])}


def _panel_choices(params):
    # The most used names, for the filter's suggestions; a GROUP BY over labels, not over images.
    return {"label_names": list(Label.objects.values_list("name", flat=True).annotate(n=Count("id"))
                                .order_by("-n", "name")[:200])}


def register():
    noted = Prefetch("reviews", to_attr="noted_reviews",
                     queryset=Review.objects.exclude(note="").select_related("user").order_by("created_at", "pk"))
    registry.register_filter(filters.FIELDS, filters.apply, order=40)
    registry.register_filter_panel("labels/_filters_labels.html", _panel_choices, order=40)
    registry.register_detail_panel("labels/_labels.html", _panel, order=15)
    registry.register_export_fields(_export, prefetch=("labels", noted), csv=_csv, csv_columns=("labels", "notes"),
                                    order=40)
