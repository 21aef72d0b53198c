"""Saved views: a gallery querystring, checked by the gallery's own filter parsing and written one way.

The gallery ignores keys it does not know (page state rides along in its links); a saved view must not,
or a typo would silently save "everything". So unknown keys are refused here, page state is dropped,
and the rest is kept in a fixed key order so the same filter is always the same text.
"""
from django.db.models import Q
from django.http import QueryDict

from curation import gallery
from team.models import SavedView

# Where the gallery or viewer was, not what it shows: never part of a saved filter.


class ViewError(ValueError):
    """A querystring or name that cannot be saved; the message names what was wrong."""


def normalise(querystring):
    """The canonical querystring of a gallery filter; ViewError on an unknown key or a bad value."""
    qd = gallery.as_querydict(querystring or "")
    known = gallery.fields()
    unknown = sorted(key for key in qd if key not in known and key not in gallery.VIEW_STATE)
    if unknown:
        raise ViewError(f"{', '.join(unknown)}: not a gallery filter (known: {', '.join(sorted(known))})")
    try:
        kept = QueryDict("", mutable=True)
        for key in sorted(k for k in qd if k not in gallery.VIEW_STATE):
            found = gallery.values(qd, key)
            if found:
                kept.setlist(key, found)
        gallery.filter_images(kept)  # parses every value (and the sort) the way the gallery will
    except gallery.FilterError as exc:
        raise ViewError(str(exc)) from None
    return kept.urlencode()


def visible_to(user):
    """The views a user may list, open and export: their own and the shared ones."""
    return SavedView.objects.filter(Q(owner=user) | Q(shared=True)).select_related("owner")


def save_view(user, name, querystring, shared=False):
    """Create or replace the user's view called `name`. Returns (view, created)."""
    name = (name or "").strip()
    if not name:
        raise ViewError("name: give the view a name")
    if len(name) > 200:
        raise ViewError("name: at most 200 characters")
    text = normalise(querystring)
    if len(text) > 2000:
        raise ViewError("filter: at most 2000 characters once normalised")
    return SavedView.objects.update_or_create(owner=user, name=name,
                                              defaults={"querystring": text, "shared": bool(shared)})
