"""Where images come from: every sighting of an image on the web or on disk."""
from django.db import models

from curation.models import Image, Run


class Source(models.Model):
    class Provider(models.TextChoices):
        BAIDU = "baidu", "Baidu keyword search"
        BAIDU_SIMILAR = "baidu_similar", "Baidu reverse-image"
        URL_LIST = "url_list", "URL list"
        FOLDER = "folder", "Folder"
        UPLOAD = "upload", "Upload"

    class Outcome(models.TextChoices):
        STORED = "stored"
        DUPLICATE = "duplicate"
        INVALID = "invalid"
        ERROR = "error"

    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="sources")
    image = models.ForeignKey(Image, null=True, blank=True, on_delete=models.CASCADE, related_name="sources")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    query = models.CharField(max_length=300, blank=True, db_index=True)
    seed_image = models.ForeignKey(
        Image, null=True, blank=True, on_delete=models.SET_NULL, related_name="expansions"
    )
    seed_name = models.CharField(max_length=300, blank=True)  # seed file name when it is not stored
    url = models.TextField(blank=True)
    url_hash = models.CharField(max_length=64, blank=True, db_index=True)  # sha256 of the URL
    page_url = models.TextField(blank=True)
    title = models.TextField(blank=True)
    rank = models.IntegerField(null=True, blank=True)
    path = models.TextField(blank=True)  # the file, for folder imports
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)
    reason = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True)  # provider metadata, sidecar JSON
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["image", "run"], name="source_image_run"),
            models.Index(fields=["run", "outcome"], name="source_run_outcome"),
            models.Index(fields=["provider", "image"], name="source_provider_image"),
        ]

    def __str__(self):
        return f"{self.provider} {self.outcome} {self.url or self.path}"
