"""Prompt versions and the vision-language model's verdicts under them."""
from django.db import models

from curation.models import Decision, Image, Run


class PromptVersion(models.Model):
    """A prompt as it was: immutable once a verdict uses it. An edited file is a new version."""

    name = models.CharField(max_length=100, db_index=True)
    system_text = models.TextField()
    user_template = models.TextField()
    content_hash = models.CharField(max_length=64, unique=True)
    source_file = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-id"]

    def __str__(self):
        return f"{self.name} ({self.content_hash[:8]})"


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
        ]

    def __str__(self):
        return f"{self.decision or 'error'} {self.score} on #{self.image_id}"
