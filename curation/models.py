"""What an image is and what we decided about it."""
from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Abs


class Decision(models.TextChoices):
    KEEP = "keep", "Keep"
    REJECT = "reject", "Reject"


class AutoStage(models.IntegerChoices):
    """Which stage made an image's automatic decision, ranked: a stage may replace the decision of a
    stage ranked at or below its own, never one above (see curation/decisions.py)."""

    CLIP = 10, "CLIP"
    # The probe trained on people's decisions: it refines CLIP, and the VLM's verdict overrides it.
    LEARNED = 20, "learned scorer"
    VLM = 30, "VLM"
    NEAR_DUPLICATE = 80, "near-duplicate"
    SEED_COPY = 90, "copy of a seed"


class Image(models.Model):
    """One distinct picture, stored once under its sha256 however often it was found."""

    sha256 = models.CharField(max_length=64)  # unique: see Meta.constraints
    file = models.FileField(max_length=200)
    thumbnail = models.FileField(max_length=200)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8)  # "jpeg" or "png": what we stored, not what we were sent
    byte_size = models.PositiveIntegerField()
    # 64-bit difference hash stored as a signed bigint (imagehash bit order, two's complement).
    dhash = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_decision = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    auto_reason = models.CharField(max_length=500, blank=True)
    auto_stage = models.PositiveSmallIntegerField(choices=AutoStage.choices, null=True, blank=True)
    human_decision = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    final_decision = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)

    # Denormalised from the latest FilterScore / VlmVerdict so gallery filters are single-table.
    clip_indoor_margin = models.FloatField(null=True, blank=True)
    clip_moderate_margin = models.FloatField(null=True, blank=True)
    object_count = models.IntegerField(null=True, blank=True)
    vlm_score = models.FloatField(null=True, blank=True)
    uncalibrated = models.BooleanField(default=False)
    # The newest learned scorer's probability of keep; null for the images it was trained on.
    learned_keep = models.FloatField(null=True, blank=True)
    # Representative of this image's near-duplicate group (itself for the representative).
    dup_group = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="dup_members",
        db_index=False,  # img_dup_group (dup_group, id) serves every lookup by group
    )
    # A person chose this image to represent its group; regrouping keeps it the representative.
    dup_pinned = models.BooleanField(default=False, db_default=False)


    class Meta:
        # Every index here that holds a row is written when the row is inserted, and on every update of
        # a decision, score or margin (those are indexed, so no update is HOT): an index no query needs
        # slows ingest, the stages and rescoring. Hence no LIKE index on sha256 (a unique constraint
        # rather than unique=True, which adds one on Postgres), none on created_at (the gallery sorts by
        # id) and none on dup_group alone.
        constraints = [models.UniqueConstraint(fields=["sha256"], name="image_sha256_unique")]
        indexes = [
            models.Index(fields=["final_decision", "-id"], name="img_final_id"),
            models.Index(fields=["auto_decision", "-id"], name="img_auto_id"),
            models.Index(fields=["human_decision", "-id"], name="img_human_id"),
            # A score's index holds only the images that have the score: a sort by it leaves the others
            # out (gallery.filter_images) and a range implies it, and a new image, with no score yet,
            # is then written to none of them.
            models.Index(fields=["clip_indoor_margin", "id"], name="img_indoor",
                         condition=models.Q(clip_indoor_margin__isnull=False)),
            models.Index(fields=["clip_moderate_margin", "id"], name="img_moderate",
                         condition=models.Q(clip_moderate_margin__isnull=False)),
            models.Index(fields=["vlm_score", "id"], name="img_vlm_score", condition=models.Q(vlm_score__isnull=False)),
            models.Index(fields=["learned_keep", "id"], name="img_learned_keep",
                         condition=models.Q(learned_keep__isnull=False)),
            # The "most useful next" review order: closest to 0.5 first (curation/gallery.py).
            models.Index(Abs(F("learned_keep") - 0.5), "id", name="img_learned_doubt",
                         condition=models.Q(learned_keep__isnull=False)),
            models.Index(fields=["dup_group", "id"], name="img_dup_group", condition=models.Q(dup_group__isnull=False)),
            # "Who decided": the automatic stage of images no person has decided (the dashboard's links).
            models.Index(fields=["auto_stage", "-id"], name="img_stage_id",
                         condition=models.Q(human_decision__isnull=True)),
            # Gallery filters (0002_gallery_indexes): "uncalibrated" and "human and auto disagree".
            models.Index(fields=["uncalibrated", "-id"], name="img_uncal_id"),
            models.Index(fields=["-id"], name="img_has_dups", condition=models.Q(dup_group__isnull=False)),
            models.Index(
                fields=["-id"], name="img_disagree_id",
                condition=models.Q(human_decision__isnull=False, auto_decision__isnull=False)
                & ~models.Q(human_decision=models.F("auto_decision")),
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.sha256[:12]}"


class FilterScore(models.Model):
    """One scorer's view of one image. The scorer key names model, weights and prompt set."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="filter_scores")
    scorer_key = models.CharField(max_length=200)
    scores = models.JSONField(default=dict)  # prompt label -> similarity
    indoor_margin = models.FloatField()
    moderate_margin = models.FloatField(null=True, blank=True)
    object_count = models.IntegerField(null=True, blank=True)
    passed = models.BooleanField()
    uncalibrated = models.BooleanField(default=False)
    run = models.ForeignKey("curation.Run", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "scorer_key"], name="uniq_score_per_scorer")]


class Review(models.Model):
    """Append-only record of a person's decision on an image."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    old = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    new = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Made by the browser for one key press: the same id sent again (a retry) is the same decision.
    client_id = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        indexes = [models.Index(fields=["image", "-created_at"], name="review_image_time")]


class Run(models.Model):
    """One launch of a stage. Postgres holds the truth; Redis only carries the work."""

    class Kind(models.TextChoices):
        CRAWL = "crawl"
        SIMILAR = "similar"
        IMPORT = "import"
        CLIP = "clip"
        DEDUP = "dedup"
        VLM = "vlm"
        EXPORT = "export"
        REVIEW = "review"
        EMBED = "embed"
        INDEX = "index"
        TRAIN = "train"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    label = models.CharField(max_length=200, blank=True, db_index=True)
    # Hash of kind + parameters: an active run with the same key is the same work, never enqueued twice.
    work_key = models.CharField(max_length=40, blank=True, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    counters = models.JSONField(default=dict, blank=True)
    total = models.IntegerField(null=True, blank=True)  # items expected, when known
    jobs_total = models.IntegerField(default=0)
    jobs_done = models.IntegerField(default=0)
    job_ids = models.JSONField(default=list, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    result = models.CharField(max_length=500, blank=True)  # e.g. the export file
    # What a person should know that is no error, e.g. a pipeline stage that was skipped and why.
    notice = models.CharField(max_length=500, blank=True)
    # The run whose end started this one (a pipeline: crawl or import, then CLIP, then the VLM).
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.kind} run #{self.pk} ({self.status})"

    @property
    def is_active(self):
        return self.status in self.ACTIVE

    # Counter keys that each mean "one item finished", whatever the stage.
    OUTCOME_KEYS = ("stored", "duplicate", "invalid", "error", "kept", "rejected", "processed", "skipped",
                    "exported", "missing", "judged", "scored", "failed")

    @property
    def processed(self):
        return sum(v for k, v in (self.counters or {}).items() if k in self.OUTCOME_KEYS and isinstance(v, int))

    def summary(self):
        c = self.counters
        return ", ".join(f"{k} {c.get(k, 0)}" for k in self.summary_keys())

    def summary_keys(self):
        if self.kind in (self.Kind.CRAWL, self.Kind.SIMILAR, self.Kind.IMPORT):
            return ("stored", "duplicate", "invalid", "error")
        return [k for k in self.counters if not k.startswith("_")]


class Snapshot(models.Model):
    """An export's selection frozen at one moment: which images, and what was known about each.

    Immutable once complete: exporting it again, however much later, writes the same bytes. Rows are
    written in chunks while `complete` is False; an incomplete snapshot is never listed or exported.
    """

    name = models.CharField(max_length=200, blank=True)
    filter = models.CharField(max_length=2000, blank=True)  # the gallery querystring that chose the images
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Also the timestamp of every entry in its archives, so it is fixed before any row is written.
    created_at = models.DateTimeField(db_index=True)
    run = models.ForeignKey("curation.Run", null=True, blank=True, on_delete=models.SET_NULL,
                            related_name="snapshots")
    image_count = models.IntegerField(default=0)
    # sha256 over the frozen rows in image order: a re-export checks nothing changed underneath it.
    digest = models.CharField(max_length=64, blank=True)
    # Code version, CLIP model and prompt set, VLM prompt texts: what produced the frozen decisions.
    provenance = models.JSONField(default=dict, blank=True)
    complete = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"snapshot #{self.pk}" + (f" {self.name}" if self.name else "")

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("snapshots are immutable: freeze a new one instead of editing this one")
        super().save(*args, **kwargs)


class SnapshotImage(models.Model):
    """One image in a snapshot, with its export metadata as it was when the snapshot was frozen."""

    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, related_name="rows")
    # PROTECT: an image (and so its stored file) outlives every snapshot that holds it.
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="snapshot_rows")
    final_decision = models.CharField(max_length=8, choices=Decision.choices, null=True, blank=True)
    # The export record (curation.export.record) as canonical JSON text: exactly its metadata.jsonl line.
    # Text rather than a JSON column, whose storage may reorder keys or rewrite numbers (-0.0, 1e-07).
    record = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "image"], name="uniq_snapshot_image")]

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("snapshot rows are immutable")
        super().save(*args, **kwargs)


class Embedding(models.Model):
    """One image's CLIP image embedding under one model and weights (`curation.embeddings`).

    Normalised and stored as float16 bytes, so no image is encoded twice by the same model; any prompt
    set is scored from it by a dot product. Raw bytes work the same on SQLite and Postgres.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="embeddings")
    model_key = models.CharField(max_length=200)  # e.g. "ViT-B-32:laion2b_s34b_b79k"
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "model_key"], name="uniq_embedding_per_model")]
        # The vector index tops itself up by (model_key, id).
        indexes = [models.Index(fields=["model_key", "id"], name="embedding_key_id")]


class ContentDuplicate(models.Model):
    """Two images whose embeddings are nearly the same picture (cosine at least the setting's threshold).

    A second kind of duplicate beside the dHash groups, which it never changes. Each pair is stored in
    both directions so "the duplicates of this image" is one index range.
    """

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="content_duplicates")
    other = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    model_key = models.CharField(max_length=200)
    similarity = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["image", "other", "model_key"], name="uniq_content_dup")]
        indexes = [models.Index(fields=["image", "-similarity"], name="content_dup_image")]


class LearnedScorer(models.Model):
    """One version of the logistic-regression probe trained on people's decisions (`curation.learned`).

    Immutable: retraining adds a version. The coefficients include the feature scaling, so
    p(keep) = sigmoid(embedding . coef + intercept). Metrics are measured on a held-out split that
    this very model never saw.
    """

    model_key = models.CharField(max_length=200)  # the embedding space it reads
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trained_on = models.IntegerField()  # images in the training split
    held_out = models.IntegerField()  # images in the held-out split
    keeps = models.IntegerField()  # people's keeps among both splits
    rejects = models.IntegerField()
    precision = models.FloatField(null=True, blank=True)  # held out, at `threshold`
    recall = models.FloatField(null=True, blank=True)
    auc = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(default=0.5)
    coef = models.BinaryField()  # float32
    intercept = models.FloatField()
    # Image ids of the training split (int64): they never get a learned score from this version.
    train_ids = models.BinaryField()
    # The newest Review when the training set was read; "K new decisions since" counts from here.
    last_review_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"learned scorer v{self.pk}"
