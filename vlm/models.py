"""Prompt versions and the vision-language model's verdicts under them."""
import hashlib
import json

from django.db import models

from curation.models import Decision, Image, Run


def prompt_hash(name, system, user):
    """What makes two prompt versions the same: their name and both texts."""
    blob = json.dumps({"name": name, "system": system, "user": user}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


class PromptVersionManager(models.Manager):
    def new_version(self, *, name, system_text, user_template, source_file=""):
        """(version, created): a new row for new text, the existing one for text already saved."""
        name, system_text, user_template = name.strip(), system_text.strip(), user_template.strip()
        return self.get_or_create(
            content_hash=prompt_hash(name, system_text, user_template),
            defaults={"name": name, "system_text": system_text, "user_template": user_template,
                      "source_file": source_file})


class PromptVersion(models.Model):
    """A prompt as it was, never edited once saved: changed text is a new version (a new row)."""

    name = models.CharField(max_length=100, db_index=True)
    system_text = models.TextField()
    user_template = models.TextField()
    content_hash = models.CharField(max_length=64, unique=True)
    source_file = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PromptVersionManager()

    class Meta:
        ordering = ["name", "-id"]

    def __str__(self):
        return f"{self.name} ({self.content_hash[:8]})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            saved = PromptVersion.objects.filter(pk=self.pk).values_list(
                "name", "system_text", "user_template", "content_hash").first()
            if saved is not None and saved != (self.name, self.system_text, self.user_template, self.content_hash):
                raise ValueError(f"prompt version #{self.pk} is immutable: save changed text as a new version")
        super().save(*args, **kwargs)


class VlmVerdict(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="verdicts")
    prompt_version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="verdicts")
    backend = models.CharField(max_length=32)
    model = models.CharField(max_length=100)
    decision = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    score = models.FloatField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    tags = models.JSONField(default=list, blank=True)
    raw_response = models.TextField(blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["image", "prompt_version", "backend", "model"], name="uniq_verdict_per_prompt_model"
            )
        ]
        indexes = [
            models.Index(fields=["prompt_version", "model", "decision"], name="verdict_pv_model_dec"),
            models.Index(fields=["prompt_version", "score"], name="verdict_pv_score"),
            # A tag filter under a score sort probes each image's verdicts for the tag: with the tags in
            # the index (Postgres; ignored elsewhere) the probe never reads the wide verdict rows.
            models.Index(fields=["image"], include=["tags"], name="verdict_image_tags"),
        ]

    def __str__(self):
        return f"{self.decision or 'error'} {self.score} on #{self.image_id}"
