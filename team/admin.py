from django.contrib import admin

from team.models import Queue, SavedView


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "shared", "querystring", "created_at")
    list_filter = ("shared",)
    search_fields = ("name", "querystring")


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("name", "view", "overlap_permille", "overlap_a", "overlap_b", "created_at")
    filter_horizontal = ("reviewers",)
    # Leases and decisions are written by claims and reviews only, never by hand.
    readonly_fields = ("created_by",)
