"""What the dashboard shows, computed in one pass of GROUP BY queries (a job runs this, not the page).

Every figure carries the gallery querystring that lists its images, so the page can link each number.
"""
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, F, FloatField, Q, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncHour
from django.utils import timezone

from crawl.models import Source
from curation.models import AutoStage, Decision, Image, Review
from team.agreement import agreement
from team.models import Queue
from vlm.models import VlmVerdict

STAGE_NAMES = {AutoStage.CLIP: "clip", AutoStage.LEARNED: "learned", AutoStage.VLM: "vlm",
               AutoStage.NEAR_DUPLICATE: "near_duplicate", AutoStage.SEED_COPY: "seed_copy"}


def compute():
    since = timezone.now() - timedelta(days=settings.SCENEIMG_DASHBOARD_DAYS)
    return {
        "decisions": _decisions(),
        "stages": _stages(),
        "reviews_per_day": _linked(_per_day(Review.objects.filter(created_at__gte=since, new__isnull=False),
                                            Count("id")), "reviewed_on"),
        "reviewers": _reviewers(),
        "agreement": _agreement(),
        "keep_rate": {
            "provider": _keep_rate("provider", "provider"),
            "query": _keep_rate("query", "query", Q(provider__in=["baidu", "baidu_similar"]) & ~Q(query="")),
            "seed": _keep_rate("seed_image_id", "seed", Q(seed_image__isnull=False)),
            "run": _keep_rate("run_id", "run", Q(run__isnull=False)),
        },
        "vlm_cost_per_day": _linked(_per_day(VlmVerdict.objects.filter(updated_at__gte=since), Coalesce(
            Sum("cost_usd"), 0.0, output_field=FloatField()), field="updated_at"), "judged_on"),
        "vlm_by_prompt": _vlm_by_prompt(),
    }


def _decisions():
    counts = dict(Image.objects.order_by().values_list("final_decision").annotate(n=Count("id")))
    reviewed = Image.objects.filter(human_decision__isnull=False).count()
    total = sum(counts.values())
    return {
        "total": total,
        "reviewed": reviewed,
        "rows": [{"name": name, "count": counts.get(value, 0), "qs": f"final={name}"}
                 for value, name in ((Decision.KEEP, "keep"), (Decision.REJECT, "reject"), (None, "none"))],
    }


def _stages():
    human = Image.objects.filter(human_decision__isnull=False).count()
    counts = dict(Image.objects.filter(human_decision__isnull=True).order_by()
                  .values_list("auto_stage").annotate(n=Count("id")))
    rows = [{"name": "a person", "count": human, "qs": "stage=human"}]
    rows += [{"name": f"{name.replace('_', ' ')} (automatic)", "count": counts.get(stage.value, 0),
              "qs": f"stage={name}"} for stage, name in STAGE_NAMES.items()]
    rows.append({"name": "nothing yet", "count": counts.get(None, 0), "qs": "stage=none"})
    return rows


def _per_day(qs, value, field="created_at"):
    """One row per day of the window, days without any as 0, so the chart's bars line up with dates."""
    rows = qs.annotate(day=TruncDate(field)).order_by().values("day").annotate(value=value)
    found = {row["day"]: row["value"] for row in rows}
    today = timezone.localdate()
    days = [today - timedelta(days=back) for back in range(settings.SCENEIMG_DASHBOARD_DAYS - 1, -1, -1)]
    return [{"day": day.isoformat(), "value": found.get(day, 0)} for day in days]


def _linked(rows, key):
    return [{**row, "qs": f"{key}={row['day']}" if row["value"] else ""} for row in rows]


def _reviewers():
    """Per person: decisions, decisions per active hour, and how often they agreed with the machine.
    Undo and clear rows are not decisions; agreement is against the image's automatic decision now."""
    decided = Review.objects.filter(user__isnull=False, new__isnull=False)
    rows = (decided.order_by().values("user_id", "user__username")
            .annotate(n=Count("id"), images=Count("image", distinct=True),
                      hours=Count(TruncHour("created_at"), distinct=True),
                      with_auto=Count("id", filter=Q(image__auto_decision__isnull=False)),
                      agree=Count("id", filter=Q(new=F("image__auto_decision"))))
            .order_by("-n"))
    return [{"name": r["user__username"], "decisions": r["n"], "images": r["images"], "per_hour": round(r["n"] / max(r["hours"], 1), 1),
             "agreement": r["agree"] / r["with_auto"] if r["with_auto"] else None,
             "qs": urlencode({"reviewer": r["user__username"]}),
             "disagree_qs": urlencode({"reviewer": r["user__username"], "disagree": 1})} for r in rows]


def _keep_rate(column, key, where=None):
    top = settings.SCENEIMG_DASHBOARD_TOP
    rows = (Source.objects.filter(where or Q(), image__isnull=False).order_by().values(column)
            .annotate(images=Count("image", distinct=True),
                      kept=Count("image", distinct=True, filter=Q(image__final_decision=Decision.KEEP)))
            .order_by("-images")[:top])
    return [{"name": str(r[column]), "images": r["images"], "kept": r["kept"],
             "rate": r["kept"] / r["images"] if r["images"] else None,
             "qs": urlencode({key: r[column]}), "kept_qs": urlencode({key: r[column], "final": "keep"})}
            for r in rows]


def _vlm_by_prompt():
    rows = (VlmVerdict.objects.order_by().values("prompt_version_id", "prompt_version__name")
            .annotate(verdicts=Count("id"), errors=Count("id", filter=Q(decision__isnull=True)),
                      cost=Coalesce(Sum("cost_usd"), 0.0, output_field=FloatField()))
            .order_by("-verdicts"))
    return [{"name": r["prompt_version__name"], "verdicts": r["verdicts"], "errors": r["errors"],
             "cost": r["cost"], "qs": f"pv={r['prompt_version_id']}"} for r in rows]


def _agreement():
    """Cohen's kappa of each queue's two overlap reviewers (team/agreement.py), newest queues first."""
    rows = []
    for queue in Queue.objects.filter(overlap_permille__gt=0, overlap_a__isnull=False, overlap_b__isnull=False) \
            .select_related("overlap_a", "overlap_b")[:20]:
        found = agreement(queue)
        rows.append({"queue": queue.name, "queue_id": queue.pk, "a": queue.overlap_a.get_username(),
                     "b": queue.overlap_b.get_username(), "both": found.both, "agreed": found.agreed,
                     "kappa": found.kappa})
    return rows
