from django.contrib import admin

from curation import admin_launch, registry, runs
from curation.models import FilterScore, Image, Review, Run


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("id", "sha256", "width", "height", "format", "final_decision", "auto_decision",
                    "human_decision", "created_at")
    list_filter = ("final_decision", "auto_decision", "human_decision", "format", "uncalibrated")
    search_fields = ("sha256",)
    readonly_fields = ("sha256", "file", "thumbnail", "width", "height", "format", "byte_size", "dhash",
                       "created_at")
    show_full_result_count = False


@admin.register(FilterScore)
class FilterScoreAdmin(admin.ModelAdmin):
    list_display = ("image", "scorer_key", "indoor_margin", "moderate_margin", "object_count", "passed",
                    "uncalibrated")
    list_filter = ("passed", "uncalibrated", "scorer_key")
    raw_id_fields = ("image", "run")
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("image", "user", "old", "new", "note", "created_at")
    raw_id_fields = ("image",)
    show_full_result_count = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "label", "status", "summary", "created_by", "created_at", "finished_at")
    list_filter = ("kind", "status")
    readonly_fields = ("work_key", "job_ids", "heartbeat_at", "jobs_total", "jobs_done", "counters",
                       "started_at", "finished_at")
    actions = ["cancel_runs"]
    change_list_template = "admin/curation/run/change_list.html"

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
