"""What a gallery card shows, worked out in Python.

The card template is rendered sixty times a page, and `{% url %}` and `floatformat` dominate its cost;
reversing each URL once per page and formatting numbers with f-strings keeps a page cheap to render.
"""
from dataclasses import dataclass

from django.urls import reverse

_MARKER = 987654321


def _url_pattern(name):
    return reverse(name, args=[_MARKER]).replace(str(_MARKER), "{}")


def _num(value, places):
    return "–" if value is None else f"{value:.{places}f}"


@dataclass(slots=True)
class Card:
    id: str  # a string, so the template does not localise a number sixty times a page
    decision: str  # "keep", "reject" or "none"
    detail_url: str
    decide_url: str
    thumb_url: str
    indoor: str
    moderate: str
    vlm: str
    disagree: bool


def with_cards(images, qs=""):
    """Attach a `card` to each image (for curation/_card.html) and return the images."""
    detail, decide, thumb = (_url_pattern(n) for n in ("curation:image_detail", "curation:decide",
                                                       "curation:image_thumb"))
    suffix = f"?{qs}" if qs else ""
    for im in images:
        im.card = Card(
            id=str(im.pk),
            decision=im.final_decision or "none",
            detail_url=detail.format(im.pk) + suffix,
            decide_url=decide.format(im.pk),
            thumb_url=thumb.format(im.pk),
            indoor=_num(im.clip_indoor_margin, 3),
            moderate=_num(im.clip_moderate_margin, 3),
            vlm=_num(im.vlm_score, 2),
            disagree=bool(im.human_decision and im.auto_decision and im.human_decision != im.auto_decision),
        )
    return images
