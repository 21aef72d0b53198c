from django.contrib import admin

from crawl.models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    # The change list links to the launch pages, which the Run admin serves for every stage.
    change_list_template = "admin/crawl/source/change_list.html"
    list_display = ("id", "provider", "outcome", "query", "url", "image", "run", "created_at")
    list_filter = ("provider", "outcome")
    search_fields = ("url", "query", "title")
    raw_id_fields = ("image", "seed_image", "run")
    show_full_result_count = False
