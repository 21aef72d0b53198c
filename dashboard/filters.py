"""Gallery filters the dashboard's numbers link to: who or which stage decided, who reviewed, and when."""
import datetime

from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from curation.gallery import FilterError, one
from curation.models import AutoStage, Review
from vlm.models import VlmVerdict

STAGES = {"clip": AutoStage.CLIP, "learned": AutoStage.LEARNED, "vlm": AutoStage.VLM,
          "near_duplicate": AutoStage.NEAR_DUPLICATE, "seed_copy": AutoStage.SEED_COPY}

FIELDS = {
    "stage": "who decided: human (a person), or with no human decision the automatic stage: "
             + ", ".join(STAGES) + ", or none (nothing decided yet)",
    "reviewer": "a person with this user name made a decision on the image",
    "reviewed_on": "a person made a decision on the image on this day (YYYY-MM-DD, the site's time zone)",
    "judged_on": "a VLM verdict on the image was written on this day (YYYY-MM-DD, the site's time zone)",
}


def _day(qd, name):
    """The [start, end) of a calendar day in the site's time zone, as a range an index can use."""
    text = one(qd, name)
    if text is None:
        return None
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        raise FilterError(f"{name}: expected a date as YYYY-MM-DD, got {text!r}") from None
    start = timezone.make_aware(datetime.datetime.combine(day, datetime.time()))
    return start, start + datetime.timedelta(days=1)


def apply(qs, qd):
    stage = one(qd, "stage")
    if stage is not None:
        if stage == "human":
            qs = qs.filter(human_decision__isnull=False)
        elif stage == "none":
            qs = qs.filter(human_decision__isnull=True, auto_stage__isnull=True)
        elif stage in STAGES:
            qs = qs.filter(human_decision__isnull=True, auto_stage=STAGES[stage])
        else:
            raise FilterError(f"stage: expected human, none or one of {', '.join(STAGES)}; got {stage!r}")
    reviewer = one(qd, "reviewer")
    if reviewer is not None:
        decided = Review.objects.filter(Q(new__isnull=False), user__username=reviewer, image=OuterRef("pk"))
        qs = qs.filter(Exists(decided))
    reviewed = _day(qd, "reviewed_on")
    if reviewed is not None:
        qs = qs.filter(Exists(Review.objects.filter(new__isnull=False, created_at__gte=reviewed[0],
                                                    created_at__lt=reviewed[1], image=OuterRef("pk"))))
    judged = _day(qd, "judged_on")
    if judged is not None:
        qs = qs.filter(Exists(VlmVerdict.objects.filter(updated_at__gte=judged[0], updated_at__lt=judged[1],
                                                        image=OuterRef("pk"))))
    return qs
