"""What the compare page's calibration needs to know about a side beyond its verdicts."""
from django import template

from vlm.prompts import active_version

register = template.Library()


@register.filter
def drives_decisions(prompt_version):
    """True when this version's verdicts set images' automatic decisions (the active version): only then
    does a new min-score change anything but the exported files."""
    active = active_version()
    return active is not None and active.pk == prompt_version.pk
