"""Gallery filters: a URL querystring in, an Image queryset out, plus keyset pagination.

The querystring is the whole state of a gallery view, so a view can be shared as a link and the
same string drives export (`export_curated --filter`), bulk review and prompt comparison.
Every filter is an indexed column of Image or an EXISTS over an indexed foreign key, so the first
page stays fast on a million rows; nothing here counts rows except `estimate_count`.
"""
import json
import math
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import Case, Exists, F, FloatField, OuterRef, Q, Value, When
from django.db.models.functions import Abs
from django.http import QueryDict

from curation import querysets, registry, search
from curation.models import ContentDuplicate, Image, SnapshotImage

PAGE_SIZE = 60
VIEW_STATE = ("after", "at", "n", "blind")  # where a page or the viewer stands, not what it selects

DECISION_VALUES = ("keep", "reject", "none")

# name -> what it does, for curation's own columns; crawl and vlm register theirs (see fields()).
# Empty values are ignored, so an HTML form can send every field.
OWN_FIELDS = {
    "final": "final decision: keep, reject or none (undecided)",
    "auto": "automatic decision: keep, reject or none",
    "human": "human decision: keep, reject or none (never reviewed or cleared)",
    "disagree": "1: a human decision that differs from the automatic one",
    "indoor_min": "CLIP indoor margin at least this",
    "indoor_max": "CLIP indoor margin at most this",
    "moderate_min": "CLIP moderate-mess margin at least this",
    "moderate_max": "CLIP moderate-mess margin at most this",
    "vlm_min": "VLM score at least this",
    "vlm_max": "VLM score at most this",
    "dups": "1: has near-duplicates; 0: has none",
    "group": "members of this near-duplicate group (the representative's Image id)",
    "uncalibrated": "1: scored by an uncalibrated (random-weight) model; 0: calibrated only",
    "ids": "these Image ids, comma-separated (at most 5000; e.g. a snapshot diff's links)",
    "snapshot": "images in this snapshot (its id), as they are now",
    "q": "text search: the images most like this description by CLIP similarity (sorted by relevance unless sort is given)",
    "like": "more like this: the images most similar to this Image id (its stored embedding)",
    "content_dups": "1: has content duplicates (embeddings at least SCENEIMG_CONTENT_DUP_THRESHOLD alike); 0: has none",
    "learned_min": "learned scorer's probability of keep at least this",
    "learned_max": "learned scorer's probability of keep at most this",
    "sort": "new (default), old, indoor, -indoor, moderate, -moderate, vlm, -vlm, learned, -learned ('-' = highest "
            "first); relevance (with q or like, and their default); uncertain: most useful next to review, the "
            "learned probability closest to 0.5 first",
}


def fields():
    """Every gallery filter name -> what it does: the registered ones first, then curation's own."""
    out = {}
    for registered in registry.gallery_filters():
        out.update(registered.fields)
    out.update(OWN_FIELDS)
    return out


# sort name -> (Image field, descending). Score sorts hide images without that score, because a
# keyset over NULLs cannot use the (score, id) index.
SORTS = {
    "new": ("id", True),
    "old": ("id", False),
    "indoor": ("clip_indoor_margin", False),
    "-indoor": ("clip_indoor_margin", True),
    "moderate": ("clip_moderate_margin", False),
    "-moderate": ("clip_moderate_margin", True),
    "vlm": ("vlm_score", False),
    "-vlm": ("vlm_score", True),
    "learned": ("learned_keep", False),
    "-learned": ("learned_keep", True),
    "uncertain": ("learned_doubt", False),
}
# Sort values computed in the query, each with the stored field whose NOT NULL its partial index is on
# (img_learned_doubt). Similarity is set per search (search_ranked) and exists only with q or like.
ANNOTATIONS = {"learned_doubt": ("learned_keep", Abs(F("learned_keep") - 0.5))}
SEARCH_SORT = "relevance"  # only with q or like, and their default


def sort_spec(name):
    """(field, descending) of a sort name from sort_name()."""
    return ("similarity", True) if name == SEARCH_SORT else SORTS[name]
SORT_LABELS = {
    "new": "Newest",
    "old": "Oldest",
    "-vlm": "VLM score, high first",
    "vlm": "VLM score, low first",
    "-indoor": "Indoor margin, high first",
    "indoor": "Indoor margin, low first",
    "-moderate": "Moderate margin, high first",
    "moderate": "Moderate margin, low first",
    "-learned": "Learned keep, high first",
    "learned": "Learned keep, low first",
    "uncertain": "Most useful next (learned, closest to 0.5)",
}

# Columns a card or a list needs; keeps wide rows (reasons, paths) off the hot path.
CARD_FIELDS = (
    "id", "thumbnail", "width", "height", "created_at", "auto_decision", "human_decision",
    "final_decision", "clip_indoor_margin", "clip_moderate_margin", "object_count", "vlm_score",
    "uncalibrated", "dup_group", "learned_keep",
)


class FilterError(ValueError):
    """A querystring value that is not valid for its filter; the message names the field."""


def as_querydict(params):
    """Accept a QueryDict, a plain dict (values may be lists) or a raw querystring."""
    if isinstance(params, QueryDict):
        return params
    if params is None:
        return QueryDict("")
    if isinstance(params, str):
        return QueryDict(params.lstrip("?"))
    qd = QueryDict("", mutable=True)
    for key, value in params.items():
        if isinstance(value, (list, tuple)):
            qd.setlist(key, [str(v) for v in value])
        elif value is not None:
            qd[key] = str(value)
    return qd


def values(qd, name):
    found = [v.strip() for v in qd.getlist(name) if v is not None and v.strip() != ""]
    # A querystring can reach here without passing a request (export_curated --filter, a bulk review's
    # `qs` field, decoded a second time), and Postgres refuses NUL in text with a 500.
    if any("\x00" in v for v in found):
        raise FilterError(f"{name}: contains a NUL character, which is not allowed")
    return found


def one(qd, name):
    found = values(qd, name)
    return found[-1] if found else None


def whole_number(qd, name):
    value = one(qd, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise FilterError(f"{name}: expected a whole number, got {value!r}") from None


def _float(qd, name):
    value = one(qd, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise FilterError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise FilterError(f"{name}: expected a finite number, got {value!r}")
    return number


def flag(qd, name):
    value = one(qd, name)
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise FilterError(f"{name}: expected 1 or 0, got {value!r}")


def _decision(qd, name):
    value = one(qd, name)
    if value is None:
        return None
    value = value.lower()
    if value not in DECISION_VALUES:
        raise FilterError(f"{name}: expected one of {', '.join(DECISION_VALUES)}, got {value!r}")
    return value


def _decision_q(field, value):
    return Q(**{f"{field}__isnull": True}) if value == "none" else Q(**{field: value})


def _search_query(qd):
    """("text", description) for q=, ("like", image id) for like=, or None."""
    text = one(qd, "q")
    like = whole_number(qd, "like")
    if text is not None and like is not None:
        raise FilterError("q, like: search by text or by image, not both")
    if text is not None:
        return ("text", text)
    return ("like", like) if like is not None else None


def sort_name(params):
    qd = as_querydict(params)
    searching = _search_query(qd) is not None
    name = one(qd, "sort") or (SEARCH_SORT if searching else "new")
    if name not in SORTS and name != SEARCH_SORT:
        raise FilterError(f"sort: expected one of {', '.join([*SORTS, SEARCH_SORT])}, got {name!r}")
    if name == SEARCH_SORT and not searching:
        raise FilterError("sort: relevance needs a search (q or like)")
    return name


def filter_images(params, *, ordered=True):
    """The Images matching a gallery querystring (QueryDict, dict or string).

    Ordered by the querystring's sort (newest first by default) unless `ordered` is False.
    Unknown keys are ignored (so `after` and other UI state can ride along); a bad value raises
    FilterError naming the field.
    """
    qd = as_querydict(params)
    qs = Image.objects.all()
    for registered in registry.gallery_filters():
        qs = registered.apply(qs, qd)
    qs = _decisions(qs, qd)
    qs = _scores(qs, qd)
    qs = _duplicates(qs, qd)
    uncalibrated = flag(qd, "uncalibrated")
    if uncalibrated is not None:
        qs = qs.filter(uncalibrated=uncalibrated)
    qs = _membership(qs, qd)
    qs = _learned(qs, qd)
    qs = _content_duplicates(qs, qd)
    qs = _search(qs, qd)
    if not ordered:
        return qs
    field, descending = sort_spec(sort_name(qd))
    if field in ANNOTATIONS:
        source, expression = ANNOTATIONS[field]
        qs = qs.annotate(**{field: expression}).filter(**{f"{source}__isnull": False})
    elif field != "id":
        qs = qs.filter(**{f"{field}__isnull": False})
    if descending:
        return qs.order_by(F(field).desc(), "-id") if field != "id" else qs.order_by("-id")
    return qs.order_by(field, "id") if field != "id" else qs.order_by("id")


def _decisions(qs, qd):
    for field in ("final", "auto", "human"):
        value = _decision(qd, field)
        if value is not None:
            qs = qs.filter(_decision_q(f"{field}_decision", value))
    disagree = flag(qd, "disagree")
    differs = Q(human_decision__isnull=False, auto_decision__isnull=False) & ~Q(human_decision=F("auto_decision"))
    if disagree is True:
        qs = qs.filter(differs)
    elif disagree is False:
        qs = qs.exclude(differs)
    return qs


def _scores(qs, qd):
    for name, field in (("indoor", "clip_indoor_margin"), ("moderate", "clip_moderate_margin"),
                        ("vlm", "vlm_score")):
        low, high = _float(qd, f"{name}_min"), _float(qd, f"{name}_max")
        if low is not None:
            qs = qs.filter(**{f"{field}__gte": low})
        if high is not None:
            qs = qs.filter(**{f"{field}__lte": high})
    return qs


def _duplicates(qs, qd):
    dups = flag(qd, "dups")
    if dups is not None:
        # A group of one is no duplicate: require another member sharing the group.
        others = Exists(Image.objects.filter(dup_group_id=OuterRef("dup_group_id")).exclude(pk=OuterRef("pk")))
        has_dups = Q(dup_group__isnull=False) & Q(others)
        qs = qs.filter(has_dups) if dups else qs.exclude(has_dups)
    group = whole_number(qd, "group")
    if group is not None:
        qs = qs.filter(Q(dup_group_id=group) | Q(pk=group))
    return qs


MAX_IDS = 5000


def _membership(qs, qd):
    ids = []
    for value in values(qd, "ids"):
        for part in value.split(","):
            if part.strip():
                try:
                    ids.append(int(part))
                except ValueError:
                    raise FilterError(f"ids: expected whole numbers separated by commas, got {part.strip()!r}") from None
    if len(ids) > MAX_IDS:
        raise FilterError(f"ids: at most {MAX_IDS} ids, got {len(ids)}")
    if values(qd, "ids"):
        qs = qs.filter(pk__in=ids)
    snapshot = whole_number(qd, "snapshot")
    if snapshot is not None:
        qs = qs.filter(Exists(SnapshotImage.objects.filter(snapshot_id=snapshot, image_id=OuterRef("pk"))))
    return qs


def _learned(qs, qd):
    low, high = _float(qd, "learned_min"), _float(qd, "learned_max")
    if low is not None:
        qs = qs.filter(learned_keep__gte=low)
    if high is not None:
        qs = qs.filter(learned_keep__lte=high)
    return qs


def _content_duplicates(qs, qd):
    wanted = flag(qd, "content_dups")
    if wanted is None:
        return qs
    pairs = ContentDuplicate.objects.filter(image_id=OuterRef("pk"), model_key=search.model_key(),
                                            similarity__gte=settings.SCENEIMG_CONTENT_DUP_THRESHOLD)
    return qs.filter(Exists(pairs)) if wanted else qs.exclude(Exists(pairs))


def _search(qs, qd):
    """q= / like=: only the most similar images that pass the other filters, with their similarity."""
    query = _search_query(qd)
    if query is None:
        return qs
    cache_key = querystring_without(qd, "after", "sort")
    try:
        hits = search.ranked(qs, query, settings.SCENEIMG_SEARCH_RESULTS, cache_key=cache_key)
    except search.SearchError as exc:
        raise FilterError(f"{'q' if query[0] == 'text' else 'like'}: {exc}") from None
    if not hits:
        return qs.none().annotate(similarity=Value(0.0, output_field=FloatField()))
    similarity = Case(*(When(pk=image_id, then=Value(score)) for image_id, score in hits), output_field=FloatField())
    return qs.filter(pk__in=[image_id for image_id, _ in hits]).annotate(similarity=similarity)


@dataclass(frozen=True)
class Cursor:
    value: float | None  # the sort value of the last row shown (None for id sorts)
    id: int

    def encode(self):
        return str(self.id) if self.value is None else f"{self.value!r},{self.id}"

    @classmethod
    def decode(cls, text):
        try:
            if "," in text:
                value, _, ident = text.partition(",")
                number = float(value)
                if not math.isfinite(number):
                    raise ValueError(value)
                return cls(number, int(ident))
            return cls(None, int(text))
        except ValueError:
            raise FilterError(f"after: not a page cursor: {text!r}") from None


def cursor_for(image, sort):
    field, _ = sort_spec(sort)
    return Cursor(None if field == "id" else getattr(image, field), image.pk)


def _after(qs, sort, cursor, *, backwards=False):
    """Rows strictly after `cursor` in `sort` order (before it when `backwards`)."""
    field, descending = sort_spec(sort)
    later = descending != backwards  # "after" means smaller values in a descending sort
    op = "lt" if later else "gt"
    if field == "id":
        return qs.filter(**{f"id__{op}": cursor.id})
    # `value <= v AND (value < v OR id < i)`: the first term bounds the (score, id) index scan,
    # the second only breaks ties; a plain OR would make Postgres scan from the index's start.
    bound = "lte" if later else "gte"
    return qs.filter(**{f"{field}__{bound}": cursor.value}).filter(
        Q(**{f"{field}__{op}": cursor.value}) | Q(**{f"id__{op}": cursor.id})
    )


def page(params, *, size=None):
    """One page of the gallery: (images, next cursor text or None)."""
    size = size or PAGE_SIZE
    qd = as_querydict(params)
    sort = sort_name(qd)
    qs = filter_images(qd).only(*CARD_FIELDS)
    after = one(qd, "after")
    if after is not None:
        qs = _after(qs, sort, Cursor.decode(after))
    # Score sorts walk their index testing each image: reading ids first keeps that walk in the indexes.
    rows = querysets.first_rows(qs, size + 1) if sort_spec(sort)[0] != "id" else list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (cursor_for(rows[-1], sort).encode() if more and rows else None)


def neighbours(params, image):
    """(previous, next) Image ids around `image` in the filtered, sorted list; None at either end."""
    qd = as_querydict(params)
    sort = sort_name(qd)
    if sort_spec(sort)[0] in ANNOTATIONS or sort == SEARCH_SORT:
        # A computed sort value: read it from the list itself (None when the image is not in it).
        image = filter_images(qd).filter(pk=image.pk).first()
        if image is None:
            return None, None
    cursor = cursor_for(image, sort)
    if sort_spec(sort)[0] != "id" and cursor.value is None:
        return None, None  # the image has no value for this sort, so it is not in the list
    qs = filter_images(qd)
    nxt = _after(qs, sort, cursor).values_list("pk", flat=True).first()
    prev = _after(qs.reverse(), sort, cursor, backwards=True).values_list("pk", flat=True).first()
    return prev, nxt


def estimate_count(params, *, exact_below=1000):
    """(count, exact): an exact count when small, else the planner's estimate (no COUNT(*) scan)."""
    qs = filter_images(params, ordered=False)
    if connection.vendor == "postgresql":
        sql, sql_params = qs.values("pk").query.sql_with_params()
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (FORMAT JSON) " + sql, sql_params)
            plan = cur.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        estimate = int(plan[0]["Plan"]["Plan Rows"])
        if estimate > exact_below:
            return estimate, False
    # Small (or SQLite): count at most exact_below + 1 rows, never the whole table.
    n = qs.values("pk")[: exact_below + 1].count()
    return (n, True) if n <= exact_below else (n, False)


def querystring_without(params, *names):
    """The querystring minus some keys (e.g. `after` for links that start at the top)."""
    qd = as_querydict(params).copy()
    for name in names:
        qd.pop(name, None)
    # Drop empty values so shared links stay short.
    for key in list(qd.keys()):
        kept = values(qd, key)
        if kept:
            qd.setlist(key, kept)
        else:
            del qd[key]
    return qd.urlencode()
