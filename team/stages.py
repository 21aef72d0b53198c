"""Everything team adds to curation's pages, registered from TeamConfig.ready()."""
from curation import registry
from team import leases


def register():
    # Save the gallery's filter as a view, or export it, from the gallery's toolbar.
    registry.register_toolbar_action("team/_gallery_toolbar.html", order=50)
    # A reviewer's decision on an image they hold in a queue ends that lease.
    registry.register_review_listener(leases.decisions_written)
