from django.contrib import admin

from crawl.models import Source
from curation.admin import HistoryAdmin


@admin.register(Source)
class SourceAdmin(HistoryAdmin):
    # The change list links to the launch pages, which the Run admin serves for every stage.
    change_list_template = "admin/crawl/source/change_list.html"
    list_display = ("id", "provider", "outcome", "query", "url", "image", "run", "created_at")
    list_filter = ("provider", "outcome")
    search_fields = ("url", "query", "title")
