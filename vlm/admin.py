from django.contrib import admin

from vlm.models import PromptVersion, VlmVerdict


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "content_hash", "source_file", "created_at")
    readonly_fields = ("content_hash",)


@admin.register(VlmVerdict)
class VlmVerdictAdmin(admin.ModelAdmin):
    list_display = ("image", "prompt_version", "backend", "model", "decision", "score", "reason", "error")
    list_filter = ("prompt_version", "backend", "model", "decision")
    search_fields = ("reason",)
    raw_id_fields = ("image", "run")
    show_full_result_count = False
