"""Gallery filters on VLM verdicts, registered with curation's gallery, and the one tag match."""
import json

from django.db import connection
from django.db.models import Exists, OuterRef, Q, TextField
from django.db.models.functions import Cast

from curation.gallery import FilterError, one, values, whole_number
from vlm.models import PromptVersion, VlmVerdict

FIELDS = {
    "pv": "has a VLM verdict under this PromptVersion id",
    "model": "restrict the verdict filters (pv, verdict, tag) to this VLM model name",
    "backend": "restrict the verdict filters (pv, verdict, tag) to this VLM backend (openai, ollama, ...)",
    "verdict": "PV:DECISION, repeatable: the verdict under prompt version PV is keep, reject or error; "
               "PV:judged has a decision (keep or reject), PV:none has none (not judged, or only an error)",
    "tag": "a VLM verdict carries this tag (repeatable: all must match)",
}

VERDICT_WORDS = ("keep", "reject", "error", "judged", "none")


def tagged(verdicts, tags):
    """Verdicts carrying every tag. Tags are stored lower-case; jsonb @> (GIN index) on Postgres,
    and on SQLite, which has no JSON containment, the JSON-encoded tag inside the array's text."""
    tags = [t.strip().lower() for t in tags if t.strip()]
    if not tags:
        return verdicts
    if connection.vendor == "postgresql":
        for tag in tags:
            verdicts = verdicts.filter(tags__contains=[tag])
        return verdicts
    verdicts = verdicts.annotate(tags_text=Cast("tags", TextField()))
    for tag in tags:
        verdicts = verdicts.filter(tags_text__contains=json.dumps(tag))
    return verdicts


def judged(qs, qd):
    """pv, model, backend and tags describe one verdict; each `verdict=PV:DECISION` is its own."""
    base = Q()
    model, backend = one(qd, "model"), one(qd, "backend")
    if model is not None:
        base &= Q(model=model)
    if backend is not None:
        base &= Q(backend=backend)
    pv = whole_number(qd, "pv")
    tags = values(qd, "tag")
    specs = values(qd, "verdict")
    if pv is not None or tags or ((model is not None or backend is not None) and not specs):
        one_verdict = tagged(VlmVerdict.objects.filter(base), tags)
        if pv is not None:
            one_verdict = one_verdict.filter(prompt_version_id=pv)
        qs = qs.filter(Exists(one_verdict.filter(image=OuterRef("pk"))))
    for spec in specs:
        pv_text, _, decision = spec.partition(":")
        decision = decision.lower()
        if not (pv_text.isascii() and pv_text.isdigit()) or decision not in VERDICT_WORDS:
            raise FilterError(f"verdict: expected PROMPT_VERSION_ID:{'|'.join(VERDICT_WORDS)}, got {spec!r}")
        cond = base & Q(prompt_version_id=int(pv_text))
        if decision in ("keep", "reject"):
            cond &= Q(decision=decision)
        else:
            cond &= Q(decision__isnull=decision == "error")
        found = Exists(VlmVerdict.objects.filter(cond, image=OuterRef("pk")))
        qs = qs.filter(~found if decision == "none" else found)
    return qs


def panel_choices(params):
    tags = [t for t in params.getlist("tag") if t.strip()]
    # The tag box shows one value; the other repeated tag= values ride along as hidden inputs.
    return {
        "prompt_versions": list(PromptVersion.objects.only("pk", "name", "content_hash")[:200]),
        "tag_value": tags[-1] if tags else "",
        "extra_tags": tags[:-1],
        "verdict_values": params.getlist("verdict"),
    }

