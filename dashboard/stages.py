"""What the dashboard adds to curation: the gallery filters its numbers link to."""
from curation import registry
from dashboard import filters


def register():
    registry.register_filter(filters.FIELDS, filters.apply, order=50)
