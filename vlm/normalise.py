"""Turn a model's reply into a verdict, or into an error. Never invent a verdict.

As the original filter_vlm.py: decision must be keep or reject, the score is clamped to [0, 1], the
reason is cut to 160 characters, tags are de-duplicated and lower-cased. Models that ignore the
schema still often answer with JSON inside a code fence or inside prose; that JSON is found.
"""
import json
import math
import re
from dataclasses import dataclass, field

REASON_MAX = 160
TAG_MAX = 40
TAGS_MAX = 20
DECISIONS = ("keep", "reject")

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class NormaliseError(ValueError):
    """The reply cannot be a verdict; the message says why."""


@dataclass
class Verdict:
    decision: str
    score: float
    reason: str
    tags: list = field(default_factory=list)

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
    """A Verdict from a reply (text or an already-parsed dict); NormaliseError when it is not one."""
    data = extract_json(payload) if not isinstance(payload, dict) else payload

    decision = data.get("decision")
    decision = decision.strip().lower() if isinstance(decision, str) else decision
    if decision not in DECISIONS:
        raise NormaliseError(f"decision must be keep or reject, got {_preview(repr(decision))}")

    score = data.get("score")
    if isinstance(score, str):
        try:
            score = float(score.strip())
        except ValueError:
            score = None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
        raise NormaliseError(f"score must be a number, got {_preview(repr(data.get('score')))}")
    score = min(1.0, max(0.0, float(score)))

    reason = data.get("reason")
    reason = _clean(reason) if reason is not None else ""
    reason = reason[:REASON_MAX]

    return Verdict(decision=decision, score=score, reason=reason, tags=normalise_tags(data.get("tags")))


def normalise_tags(raw):
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
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
        if len(tags) >= TAGS_MAX:
            break
    return tags


def final_decision(verdict_decision, score, min_score):
    """keep when the model said keep and the score reaches min_score, else reject."""
    return "keep" if verdict_decision == "keep" and score is not None and score >= min_score else "reject"


def _clean(value):
    """One line of text without NUL: Postgres text and jsonb refuse \\x00, which a model can emit."""
    return " ".join(str(value).replace("\x00", "").split())


def _preview(text, n=80):
    text = _clean(text)
    return text if len(text) <= n else text[: n - 1] + "…"
