"""Comparing two prompt versions: how often they agree, and how each fares against people.

A "side" is one prompt version judged by one model through one backend (the same model name
served by two backends gives two sides, never one side counting an image twice). Verdicts without a decision (errors) are
left out everywhere: an error is not a vote. Every count is one aggregate query, so the page
costs the same at ten verdicts or ten million.
"""
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.db.models import Avg, Count, Exists, F, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce, Floor
from django.urls import NoReverseMatch, reverse

from curation.models import Decision
from vlm.models import PromptVersion, VlmVerdict

KEEP, REJECT = Decision.KEEP.value, Decision.REJECT.value
DECISIONS = (KEEP, REJECT)
# The min-score threshold curve is sampled every 1/STEPS (0.00, 0.05, ..., 1.00).
STEPS = 20


@dataclass(frozen=True)
class Side:
    prompt_version: PromptVersion
    model: str
    backend: str | None = None  # None: any backend (only safe when one backend serves this model)

    def verdicts(self):
        return self.calls().filter(decision__isnull=False)

    def calls(self):
        """Every verdict row of this side, errors included (an error was a call, and may have cost)."""
        qs = VlmVerdict.objects.filter(prompt_version=self.prompt_version, model=self.model)
        return qs if self.backend is None else qs.filter(backend=self.backend)

    @property
    def key(self):
        """How the compare form and its querystring name this side's backend and model."""
        return side_key(self.backend or "", self.model)

    @property
    def label(self):
        return f"{self.prompt_version.name} · {self.backend + ' / ' if self.backend else ''}{self.model}"


def side_key(backend, model):
    # Backend names never contain ":"; model names may ("llava:13b"), so split at the first one.
    return f"{backend}:{model}"


@dataclass
class Metrics:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def judged(self):
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self):
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self):
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self):
        p, r = self.precision, self.recall
        if p is None or r is None or p + r == 0:
            return None
        return 2 * p * r / (p + r)


@dataclass
class Usage:
    """What one side judged and what it cost: every call, not only images people reviewed."""
    judged: int = 0  # images with a decision from this side
    calls: int = 0  # verdict rows, errors included
    errors: int = 0
    priced: int = 0  # calls with a known cost
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float | None = None

    @property
    def cost_per_image(self):
        return ratio(self.cost_usd, self.judged) if self.priced else None


def usage(side):
    """One aggregate query over the side's verdicts."""
    row = side.calls().aggregate(
        judged=Count("image_id", distinct=True, filter=Q(decision__isnull=False)),
        calls=Count("id"), errors=Count("id", filter=Q(decision__isnull=True)),
        priced=Count("cost_usd"), cost=Sum("cost_usd"), tin=Sum("input_tokens"), tout=Sum("output_tokens"),
        latency=Avg("latency_ms"),
    )
    return Usage(judged=row["judged"], calls=row["calls"], errors=row["errors"], priced=row["priced"],
                 cost_usd=row["cost"] or 0.0, input_tokens=row["tin"] or 0, output_tokens=row["tout"] or 0,
                 latency_ms=row["latency"])


@dataclass
class Comparison:
    a: Side
    b: Side
    # table[a_decision][b_decision] = images judged by both sides
    table: dict = field(default_factory=dict)
    only_a: int = 0
    only_b: int = 0
    metrics_a: Metrics = None
    metrics_b: Metrics = None
    curve_a: list = field(default_factory=list)
    curve_b: list = field(default_factory=list)
    usage_a: Usage = None
    usage_b: Usage = None

    @property
    def both(self):
        return sum(self.table[x][y] for x in DECISIONS for y in DECISIONS)

    @property
    def agreement(self):
        return ratio(self.table[KEEP][KEEP] + self.table[REJECT][REJECT], self.both)


def ratio(num, den):
    return num / den if den else None


def models_for(prompt_version):
    """(backend, model) pairs that judged under this prompt version, most verdicts first."""
    return list(
        VlmVerdict.objects.filter(prompt_version=prompt_version)
        .values("backend", "model").annotate(n=Count("id")).order_by("-n", "backend", "model")
        .values_list("backend", "model")
    )


def _decision_of(side):
    """The side's decision on the outer verdict's image, for annotating another side's verdicts."""
    return Subquery(side.verdicts().filter(image_id=OuterRef("image_id")).order_by("-id").values("decision")[:1])


def agreement_table(a, b):
    """(table, only_a, only_b): decisions of A against B on the images both judged."""
    b_decision = _decision_of(b)
    table = {x: {y: 0 for y in DECISIONS} for x in DECISIONS}
    only_a = 0
    rows = a.verdicts().annotate(b_decision=b_decision).values("decision", "b_decision").annotate(n=Count("id"))
    for row in rows.order_by():
        if row["b_decision"] is None:
            only_a += row["n"]
        else:
            table[row["decision"]][row["b_decision"]] += row["n"]
    only_b = b.verdicts().exclude(Exists(a.verdicts().filter(image_id=OuterRef("image_id")))).count()
    return table, only_a, only_b


def disagreements(a, b, limit=6):
    """A few images on which A and B decided differently, those with a person's decision first:
    [{"image": id, "human": decision or None, "pairs": [("A", verdict), ("B", verdict)], urls}], two queries."""
    mine = list(
        a.verdicts().annotate(b_decision=_decision_of(b)).filter(b_decision__isnull=False)
        .exclude(decision=F("b_decision")).select_related("image")
        .order_by(F("image__human_decision").asc(nulls_last=True), "-image_id")[:limit]
    )
    theirs = {}
    for v in b.verdicts().filter(image_id__in=[v.image_id for v in mine]).order_by("id"):
        theirs[v.image_id] = v  # the newest wins, as in the agreement table
    return [{"image": v.image_id, "human": v.image.human_decision, "pairs": [("A", v), ("B", theirs[v.image_id])],
             "thumb_url": _reverse_or("curation:image_thumb", "", args=[v.image_id]),
             "detail_url": image_url(v.image_id)} for v in mine if v.image_id in theirs]


def threshold_counts(side):
    """Per score bucket, how many verdicts of each (decision, human decision) pair: one query.

    Bucket k holds scores in [k/STEPS, (k+1)/STEPS); a missing score counts as 0.
    """
    rows = (
        side.verdicts().filter(image__human_decision__isnull=False)
        .annotate(bucket=Floor(Coalesce(F("score"), 0.0) * STEPS), human=F("image__human_decision"))
        .values("decision", "human", "bucket").annotate(n=Count("id")).order_by()
    )
    return [(r["decision"], r["human"], int(r["bucket"]), r["n"]) for r in rows]


def metrics_from(counts, threshold_bucket=0):
    """Keep is the positive class. A verdict predicts keep when it said keep with score >= threshold."""
    m = Metrics()
    for decision, human, bucket, n in counts:
        predicted_keep = decision == KEEP and bucket >= threshold_bucket
        if predicted_keep and human == KEEP:
            m.tp += n
        elif predicted_keep:
            m.fp += n
        elif human == KEEP:
            m.fn += n
        else:
            m.tn += n
    return m


def curve_from(counts):
    """[(threshold, precision, recall)] for thresholds 0, 1/STEPS, ..., 1."""
    points = []
    for k in range(STEPS + 1):
        m = metrics_from(counts, k)
        points.append((k / STEPS, m.precision, m.recall))
    return points


def compare(a, b):
    table, only_a, only_b = agreement_table(a, b)
    counts_a, counts_b = threshold_counts(a), threshold_counts(b)
    return Comparison(
        a=a, b=b, table=table, only_a=only_a, only_b=only_b,
        metrics_a=metrics_from(counts_a), metrics_b=metrics_from(counts_b),
        curve_a=curve_from(counts_a), curve_b=curve_from(counts_b),
        usage_a=usage(a), usage_b=usage(b),
    )


# --- The chart: inline SVG computed here so the template only places shapes. ---

CHART_W, CHART_H, PAD = 420, 220, 36


def _xy(threshold, value):
    x = PAD + threshold * (CHART_W - 2 * PAD)
    y = CHART_H - PAD - value * (CHART_H - 2 * PAD)
    return round(x, 1), round(y, 1)


def _polylines(curve, index):
    """Point strings of the lines; a gap where the value is undefined splits the line."""
    lines, current = [], []
    for point in curve:
        value = point[index]
        if value is None:
            if current:
                lines.append(current)
            current = []
        else:
            current.append(_xy(point[0], value))
    if current:
        lines.append(current)
    return [" ".join(f"{x},{y}" for x, y in line) for line in lines]


def chart(comparison):
    """What templates/vlm/_threshold_chart.html draws: axes ticks and four series."""
    series = []
    for name, curve, css in (("A", comparison.curve_a, "a"), ("B", comparison.curve_b, "b")):
        series.append({"label": f"{name} precision", "css": f"series-{css} precision",
                       "lines": _polylines(curve, 1)})
        series.append({"label": f"{name} recall", "css": f"series-{css} recall", "lines": _polylines(curve, 2)})
    ticks = [i / 4 for i in range(5)]
    return {
        "width": CHART_W, "height": CHART_H, "pad": PAD,
        "x0": PAD, "x1": CHART_W - PAD, "y0": CHART_H - PAD, "y1": PAD,
        "xticks": [{"x": _xy(t, 0)[0], "label": f"{t:.2f}"} for t in ticks],
        "yticks": [{"y": _xy(0, t)[1], "label": f"{t:.2f}"} for t in ticks],
        "series": series,
        "empty": all(not s["lines"] for s in series),
    }


# --- Links into the gallery ---
#
# The gallery (curation.gallery) keeps its filters in the querystring: `verdict=PV:DECISION`
# (repeatable), `model` and `backend` (restrict every verdict filter to one model / backend) and
# `human`. When A and B use different models (or backends), the gallery cannot tell them apart, so
# those links leave the model (or backend) out.


def _reverse_or(name, fallback, args=()):
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return fallback


def gallery_url(params):
    """`params`: a list of (key, value) pairs, keys may repeat."""
    base = _reverse_or("curation:gallery", "/")
    query = urlencode([(k, v) for k, v in params if v not in (None, "")])
    return f"{base}?{query}" if query else base


def image_url(image_id):
    return _reverse_or("curation:image_detail", f"/image/{image_id}/", args=[image_id])


def cell_url(*side_decisions, human=None):
    """Gallery link for images where each (side, decision) holds, e.g. ((a, "keep"), (b, "reject"))."""
    models = {side.model for side, _ in side_decisions}
    params = [("model", models.pop())] if len(models) == 1 else []
    backends = {side.backend for side, _ in side_decisions}
    if len(backends) == 1 and None not in backends:
        params.append(("backend", backends.pop()))
    params += [("verdict", f"{side.prompt_version.pk}:{decision}") for side, decision in side_decisions]
    if human:
        params.append(("human", human))
    return gallery_url(params)


def only_url(side, other):
    """Gallery link for the images `side` judged and `other` did not (errors are not a judgement)."""
    return cell_url((side, "judged"), (other, "none"))
