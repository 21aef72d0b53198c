"""Prompt-version comparison and the VLM audit. Thin views: the work is in vlm.compare."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.shortcuts import render

from curation import calibration, registry
from vlm import compare as cmp
from vlm.filters import tagged
from vlm.models import PromptVersion, VlmVerdict
from vlm.prompt_diff import prompt_diffs

AUDIT_PAGE = 50


def _int(value):
    """A whole number from the querystring, or None; "²" passes str.isdigit() but not int()."""
    value = str(value or "")
    return int(value) if value.isascii() and value.isdigit() else None


def all_models():
    """Distinct model names. A scan of the verdict table, so cached for a minute."""
    models = cache.get("vlm:models")
    if models is None:
        models = sorted(set(VlmVerdict.objects.order_by().values_list("model", flat=True).distinct()))
        cache.set("vlm:models", models, 60)
    return models


def _side(versions, pv_id, wanted):
    """The side for `wanted` ("backend:model" from the form, or a bare model name from older links),
    else the pair with the most verdicts. Returns (side or None, [(key, label)] choices)."""
    pv = versions.get(pv_id)
    if pv is None:
        return None, []
    pairs = cmp.models_for(pv)
    choices = [(cmp.side_key(backend, model), f"{backend} / {model}") for backend, model in pairs]
    pick = next((pair for pair in pairs if cmp.side_key(*pair) == wanted), None)
    pick = pick or next((pair for pair in pairs if pair[1] == wanted), None) or (pairs[0] if pairs else None)
    return (cmp.Side(pv, pick[1], pick[0]) if pick else None), choices


def _cells(comparison):
    """The 2x2 table with a gallery link per cell, in row order A keep, A reject."""
    a, b = comparison.a, comparison.b
    rows = []
    for x in cmp.DECISIONS:
        cells = [{"b": y, "n": comparison.table[x][y], "url": cmp.cell_url((a, x), (b, y)), "agree": x == y}
                 for y in cmp.DECISIONS]
        rows.append({"a": x, "cells": cells})
    return rows


def _metric_rows(comparison):
    rows = []
    for name, side, m, usage in (("A", comparison.a, comparison.metrics_a, comparison.usage_a),
                                 ("B", comparison.b, comparison.metrics_b, comparison.usage_b)):
        rows.append({
            "name": name, "side": side, "m": m, "usage": usage,
            "tp_url": cmp.cell_url((side, cmp.KEEP), human=cmp.KEEP),
            "fp_url": cmp.cell_url((side, cmp.KEEP), human=cmp.REJECT),
            "fn_url": cmp.cell_url((side, cmp.REJECT), human=cmp.KEEP),
            "tn_url": cmp.cell_url((side, cmp.REJECT), human=cmp.REJECT),
        })
    return rows


def _compare_extras(comparison):
    """The links for images only one side judged, a few disagreements, the prompt texts side by side
    and what each side cost."""
    a, b = comparison.a, comparison.b
    return {
        "only_a_url": cmp.only_url(a, b), "only_b_url": cmp.only_url(b, a),
        "disagreements": cmp.disagreements(a, b),
        "prompt_diffs": prompt_diffs(a.prompt_version, b.prompt_version),
        "usage_rows": [("A", a, comparison.usage_a), ("B", b, comparison.usage_b)],
    }


@login_required
def compare_view(request):
    versions = {pv.pk: pv for pv in PromptVersion.objects.all()}
    ordered = sorted(versions.values(), key=lambda pv: (pv.name, -pv.pk))
    pv_a, pv_b = _int(request.GET.get("a")), _int(request.GET.get("b"))
    if pv_a is None and pv_b is None and len(ordered) >= 2:
        # Default: the two newest versions, older as A.
        newest = sorted(versions.values(), key=lambda pv: -pv.pk)[:2]
        pv_b, pv_a = newest[0].pk, newest[1].pk
    side_a, models_a = _side(versions, pv_a, request.GET.get("model_a", ""))
    side_b, models_b = _side(versions, pv_b, request.GET.get("model_b", ""))
    context = {
        "versions": ordered, "pv_a": pv_a, "pv_b": pv_b, "models_a": models_a, "models_b": models_b,
        "side_a": side_a, "side_b": side_b, "comparison": None,
    }
    if side_a and side_b:
        comparison = cmp.compare(side_a, side_b)
        context.update({
            "comparison": comparison,
            "rows": _cells(comparison),
            "metric_rows": _metric_rows(comparison),
            "chart": cmp.chart(comparison),
            **_compare_extras(comparison),
        })
        context["same_model"] = (side_a.model, side_a.backend) == (side_b.model, side_b.backend)
    context["calibrations"] = _calibrations(request, [side_a, side_b])
    return render(request, "vlm/compare.html", context)


def _calibrations(request, sides):
    """The CLIP indoor margin's and each VLM side's min-score precision/recall against people."""
    clip = calibration.clip_indoor_margin()
    vlm = []
    for name, side in zip("AB", sides, strict=True):
        if side is None:
            continue
        rows = side.verdicts().filter(image__human_decision__isnull=False).values_list(
            "decision", "score", "image__human_decision")
        result = calibration.vlm_min_score(list(rows))
        result.name = f"{name}: {side.label} min-score"
        vlm.append({"result": result, "chart": calibration.polylines(result), "side": side})
    return {"clip": clip, "clip_chart": calibration.polylines(clip), "vlm": vlm,
            "can_apply": registry.can_launch(request.user), "prompts": settings.SCENEIMG_CLIP_PROMPTS}


AUDIT_FILTERS = ("q", "tag", "pv", "model", "decision", "errors")


def audit_queryset(params):
    """Verdicts matching the audit filters, newest first. `params` is a QueryDict or dict."""
    qs = VlmVerdict.objects.select_related("prompt_version", "image").order_by("-id")
    q = (params.get("q") or "").strip()
    if q:
        qs = qs.filter(reason__icontains=q)
    qs = tagged(qs, (params.get("tag") or "").split(","))
    pv = _int(params.get("pv"))
    if pv is not None:
        qs = qs.filter(prompt_version_id=pv)
    if params.get("model"):
        qs = qs.filter(model=params.get("model"))
    decision = params.get("decision") or ""
    if decision in cmp.DECISIONS:
        qs = qs.filter(decision=decision)
    elif decision == "none":
        qs = qs.filter(decision__isnull=True)
    errors = params.get("errors") or ""
    if errors == "only":
        qs = qs.exclude(error="")
    elif errors == "exclude":
        qs = qs.filter(error="")
    return qs


def audit_page(params):
    """One keyset page: (verdicts, next cursor or None). `after` is the last id already shown."""
    qs = audit_queryset(params)
    after = _int(params.get("after"))
    if after is not None:
        qs = qs.filter(id__lt=after)
    page = list(qs[: AUDIT_PAGE + 1])
    more = len(page) > AUDIT_PAGE
    page = page[:AUDIT_PAGE]
    for verdict in page:
        verdict.image_link = cmp.image_url(verdict.image_id)
    return page, (page[-1].pk if more else None)


@login_required
def audit_view(request):
    verdicts, next_after = audit_page(request.GET)
    filters = {k: request.GET.get(k, "") for k in AUDIT_FILTERS}
    next_params = request.GET.copy()
    if next_after is not None:
        next_params["after"] = next_after
    context = {
        "verdicts": verdicts, "next_url": f"?{next_params.urlencode()}" if next_after else None,
        "filters": filters, "versions": PromptVersion.objects.order_by("name", "-id"),
        "models": all_models(), "decisions": cmp.DECISIONS,
    }
    if request.htmx and request.GET.get("after"):
        # "Load more": only the next rows (and the next "load more" row) are swapped in.
        return render(request, "vlm/_audit_rows.html", context)
    return render(request, "vlm/audit.html", context)
