from django.contrib import admin

from crawl.admin_launch import hook
from crawl.models import Source


@admin.register(Source)
@hook  # launch pages: keyword crawl, reverse-image expansion, URL list, folder
class SourceAdmin(admin.ModelAdmin):
    list_display = ("id", "provider", "outcome", "query", "url", "image", "run", "created_at")
    list_filter = ("provider", "outcome")
    search_fields = ("url", "query", "title")
    raw_id_fields = ("image", "seed_image", "run")
    show_full_result_count = False
