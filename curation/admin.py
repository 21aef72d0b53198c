import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from curation import admin_launch, registry, runs
from curation.models import FilterScore, Image, Review, Run, Snapshot


class HistoryAdmin(admin.ModelAdmin):
    """History is viewed and filtered here, never edited: decisions change on the image's page, where
    every change writes a Review; scores, verdicts and sightings come only from their stages."""

    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Image)
class ImageAdmin(HistoryAdmin):
    list_display = ("id", "sha256", "width", "height", "format", "final_decision", "auto_decision", "auto_stage",
                    "human_decision", "review_link", "created_at")
    list_filter = ("final_decision", "auto_decision", "auto_stage", "human_decision", "format", "uncalibrated")
    search_fields = ("sha256",)

    @admin.display(description="review")
    def review_link(self, image):
        return format_html('<a href="{}">decide on its page</a>', reverse("curation:image_detail", args=[image.pk]))


@admin.register(FilterScore)
class FilterScoreAdmin(HistoryAdmin):
    list_display = ("image", "scorer_key", "indoor_margin", "moderate_margin", "object_count", "passed",
                    "uncalibrated")
    list_filter = ("passed", "uncalibrated", "scorer_key")


@admin.register(Review)
class ReviewAdmin(HistoryAdmin):
    list_display = ("image", "user", "old", "new", "note", "created_at")
    list_filter = ("new",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "label", "status", "summary", "created_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
    actions = ["cancel_runs"]
    change_list_template = "admin/curation/run/change_list.html"

    def has_add_permission(self, request):
        return False  # a run comes from a launch (see the launch pages), never from a bare row

    def has_change_permission(self, request, obj=None):
        return False  # its status and counters are the workers' to write

    def has_delete_permission(self, request, obj=None):
        return False  # sightings, scores and reviews point at it: the record of where things came from

    def get_urls(self):
        return admin_launch.launch_urls(self) + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        runs.reap_stale_runs()
        extra_context = {**(extra_context or {}), "stages": registry.stages()}
        return super().changelist_view(request, extra_context)

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request, queryset):
        cancelled = sum(runs.cancel(run) for run in queryset.filter(status__in=Run.ACTIVE))
        self.message_user(request, f"cancelled {cancelled} run(s)")


@admin.register(Snapshot)
class SnapshotAdmin(HistoryAdmin):
    """Read-only: a snapshot is never edited or deleted here (its exports must stay reproducible)."""

    list_display = ("id", "name", "filter", "image_count", "created_by", "created_at", "complete")
    list_filter = ("complete",)
    search_fields = ("name", "filter")
    fields = ("name", "filter", "image_count", "created_by", "created_at", "run", "digest", "complete",
              "provenance_text", "pages")
    readonly_fields = fields

    @admin.display(description="provenance")
    def provenance_text(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.provenance, ensure_ascii=False, indent=2, sort_keys=True))

    @admin.display(description="pages")
    def pages(self, obj):
        return format_html('<a href="{}">snapshot page</a> · <a href="{}">provenance sheet</a>',
                           reverse("curation:snapshot_detail", args=[obj.pk]),
                           reverse("curation:snapshot_provenance", args=[obj.pk]))
