"""Gallery filters the dashboard's numbers link to: who or which stage decided, and who reviewed."""
from django.db.models import Exists, OuterRef, Q

from curation.gallery import FilterError, one
from curation.models import AutoStage, Review

STAGES = {"clip": AutoStage.CLIP, "learned": AutoStage.LEARNED, "vlm": AutoStage.VLM,
          "near_duplicate": AutoStage.NEAR_DUPLICATE, "seed_copy": AutoStage.SEED_COPY}

FIELDS = {
    "stage": "who decided: human (a person), or with no human decision the automatic stage: "
             + ", ".join(STAGES) + ", or none (nothing decided yet)",
    "reviewer": "a person with this user name made a decision on the image",
}


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
    return qs
