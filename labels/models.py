"""Labels people put on images, kept apart from the tags a VLM writes on its verdicts."""
from django.conf import settings
from django.db import models

from curation.models import Image

NAME_MAX = 64


def normalise(name):
    """One spelling per label: trimmed, inner whitespace collapsed, lower-case."""
    return " ".join((name or "").split()).lower()


class Label(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=NAME_MAX)
    # Who added it; a label is the team's, so anyone who reviews may remove it.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "name"], name="label_once_per_image")]
        # The gallery's label filter: EXISTS (name = %s AND image_id = outer id).
        indexes = [models.Index(fields=["name", "image"], name="label_name_image")]
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} on #{self.image_id}"
