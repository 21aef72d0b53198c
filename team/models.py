"""Saved gallery views, review queues built on them, and the per-image work items that carry leases."""
from django.conf import settings
from django.db import models


class SavedView(models.Model):
    """A gallery filter with a name: the normalised querystring (team/saved.py), never raw input."""

    name = models.CharField(max_length=200)
    querystring = models.CharField(max_length=2000, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    # Shared views are listed for, opened and exported by everyone signed in; private ones by their owner.
    shared = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="uniq_view_name_per_owner")]

    def __str__(self):
        return self.name


class Queue(models.Model):
    """A saved view handed to reviewers. Images are claimed in batches under a lease (team/leases.py).

    A sample of about `overlap_permille`/1000 of the view goes to both `overlap_a` and `overlap_b`
    (each in their own lane) so their agreement can be measured; the rest is one shared pool.
    """

    name = models.CharField(max_length=200)
    view = models.ForeignKey(SavedView, on_delete=models.PROTECT, related_name="queues")
    reviewers = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="review_queues")
    overlap_permille = models.PositiveSmallIntegerField(default=0)
    overlap_a = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    overlap_b = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return self.name

    def overlap_pair(self):
        return {self.overlap_a_id, self.overlap_b_id} - {None} if self.overlap_permille else set()


class QueueItem(models.Model):
    """One image's place in a queue's lane: leased to a reviewer until `lease_until`, then done.

    Lane 0 is the shared pool (an image there is reviewed once, by whoever claims it); an overlap
    image has one item per overlap reviewer, in the lane numbered by that reviewer's user id. The
    unique constraint is what finally keeps two reviewers off the same pool image.
    """

    POOL = 0

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="items")
    image = models.ForeignKey("curation.Image", on_delete=models.CASCADE, related_name="+")
    lane = models.BigIntegerField(default=POOL)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    lease_until = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True)  # the claim that last took it (read back by that claim)
    done = models.BooleanField(default=False)
    decision = models.CharField(max_length=8, null=True, blank=True)  # what the reviewer decided here
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "image", "lane"], name="uniq_queue_image_lane")]
        indexes = [
            models.Index(fields=["queue", "reviewer", "done"], name="queueitem_reviewer"),
            models.Index(fields=["queue", "done", "lease_until"], name="queueitem_lease"),
            models.Index(fields=["image", "reviewer"], name="queueitem_image_reviewer",
                         condition=models.Q(done=False)),
        ]
