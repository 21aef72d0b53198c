"""Turn a model's reply into a verdict. Only a reply without any JSON object is an error.

As the original filter_vlm.py did: a decision other than keep or reject is read as reject, a score
that is not a number is read as 0.0 and any score is clamped to [0, 1], the reason is cut to 160
characters, and `room_tags` (at most 8) and `object_tags` (at most 10) are lower-cased and
de-duplicated, a string being split on the separators models use. The raw reply is stored whole
beside the verdict, so a coerced answer can always be audited. Models that ignore the schema still
often answer with JSON inside a code fence or inside prose; that JSON is found.

Room and object tags live in the verdict's one `tags` list, marked `room:` and `object:`, after
any plain `tags` the prompt asked for; `split_tags` takes them apart again.
"""
import json
import math
import re
from dataclasses import dataclass, field

REASON_MAX = 160
TAG_MAX = 40
TAGS_MAX = 20
ROOM_TAGS_MAX = 8  # the original's limits
OBJECT_TAGS_MAX = 10
DECISIONS = ("keep", "reject")
ROOM_PREFIX = "room:"
OBJECT_PREFIX = "object:"

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_TAG_SEPARATORS = re.compile(r"[;,/、|｜\n]+")  # the original's separators for a tag string


class NormaliseError(ValueError):
    """The reply cannot be a verdict; the message says why."""


@dataclass
class Verdict:
    decision: str
    score: float
    reason: str
    plain_tags: list = field(default_factory=list)
    room_tags: list = field(default_factory=list)
    object_tags: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what was coerced, for the audit

    @property
    def tags(self):
        """The form stored in VlmVerdict.tags: plain tags, then room and object tags with their marks."""
        return join_tags(self.plain_tags, self.room_tags, self.object_tags)

    def as_dict(self):
        return {"decision": self.decision, "score": self.score, "reason": self.reason, "tags": self.tags}


def extract_json(text):
    """The first JSON object in `text`: the whole text, a fenced block, or an object inside prose."""
    if not isinstance(text, str) or not text.strip():
        raise NormaliseError("empty reply")
    stripped = text.strip()
    candidates = [stripped] + [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    raise NormaliseError(f"no JSON object in reply: {_preview(text)}")


def normalise(payload):
    """A Verdict from a reply (text or an already-parsed dict); NormaliseError when there is no JSON object."""
    data = extract_json(payload) if not isinstance(payload, dict) else payload
    notes = []

    raw_decision = data.get("decision")
    decision = str(raw_decision or "").strip().lower()
    if decision not in DECISIONS:
        notes.append(f"decision {_preview(repr(raw_decision), 40)} read as reject")
        decision = "reject"

    raw_score = data.get("score")
    try:
        score = float(raw_score)
    except (TypeError, ValueError):
        score = math.nan
    if math.isnan(score):
        notes.append(f"score {_preview(repr(raw_score), 40)} read as 0.0")
        score = 0.0
    score = min(1.0, max(0.0, score))

    reason = data.get("reason")
    reason = _clean(reason)[:REASON_MAX] if reason else ""

    return Verdict(
        decision=decision, score=score, reason=reason, plain_tags=normalise_tags(data.get("tags")),
        room_tags=normalise_tags(data.get("room_tags"), limit=ROOM_TAGS_MAX),
        object_tags=normalise_tags(data.get("object_tags"), limit=OBJECT_TAGS_MAX), notes=notes,
    )


def normalise_tags(raw, *, limit=TAGS_MAX):
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = _TAG_SEPARATORS.split(raw)
    if not isinstance(raw, (list, tuple)):
        return []
    tags, seen = [], set()
    for item in raw:
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            continue
        tag = _clean(item).lower()[:TAG_MAX]
        if tag and tag not in seen:
            seen.add(tag)
            tags.append(tag)
        if len(tags) >= limit:
            break
    return tags


def join_tags(plain, room, objects):
    return [*plain, *(ROOM_PREFIX + t for t in room), *(OBJECT_PREFIX + t for t in objects)]


def split_tags(tags):
    """(plain tags, room tags, object tags) from a stored VlmVerdict.tags list."""
    plain, room, objects = [], [], []
    for tag in tags or []:
        if not isinstance(tag, str):
            continue
        if tag.startswith(ROOM_PREFIX):
            room.append(tag[len(ROOM_PREFIX):])
        elif tag.startswith(OBJECT_PREFIX):
            objects.append(tag[len(OBJECT_PREFIX):])
        else:
            plain.append(tag)
    return plain, room, objects


def reply_json(raw):
    """The model's own JSON object inside a stored raw response (an OpenAI Responses or an Ollama chat
    body, or the bare reply text); {} when there is none."""
    if not raw:
        return {}
    texts = []
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            texts.append(message["content"])
        for item in body.get("output") or []:
            for content in (item.get("content") or []) if isinstance(item, dict) else []:
                if isinstance(content, dict) and isinstance(content.get("text"), str):
                    texts.append(content["text"])
        if not texts and "decision" in body:
            return body
    texts.append(raw)
    for text in texts:
        try:
            return extract_json(text)
        except NormaliseError:
            continue
    return {}


def final_decision(verdict_decision, score, min_score):
    """keep when the model said keep and the score reaches min_score, else reject."""
    return "keep" if verdict_decision == "keep" and score is not None and score >= min_score else "reject"


def _clean(value):
    """One line of text without NUL: Postgres text and jsonb refuse \\x00, which a model can emit."""
    return " ".join(str(value).replace("\x00", "").split())


def _preview(text, n=80):
    text = _clean(text)
    return text if len(text) <= n else text[: n - 1] + "…"
