"""Template access to what other apps register (curation/registry.py), for partials that views render in
several places (the gallery's results are drawn by the page and again by each htmx swap)."""
from django import template

from curation import registry

register = template.Library()


@register.simple_tag
def gallery_toolbar_actions():
    """The templates other apps add to the gallery's toolbar, in their order."""
    return [action.template for action in registry.toolbar_actions()]
