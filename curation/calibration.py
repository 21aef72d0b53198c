"""Calibration: how a score threshold trades precision for recall against people's decisions.

For a score where "keep when score >= threshold" (the CLIP indoor margin, the VLM min-score), the
images people decided give a precision/recall curve (scikit-learn's precision_recall_curve), and the
suggested threshold is the one with the most recall among those whose precision reaches the target
(SCENEIMG_CALIBRATION_PRECISION). Keep is the positive class.

The compare page shows both (vlm/views.py passes the VLM's verdicts in; curation never imports vlm)
and applies the CLIP suggestion with one click, as a rescore run with that indoor margin.
"""
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from curation.models import Decision, Image

MAX_POINTS = 101  # curve points kept for the chart


@dataclass
class Calibration:
    name: str
    target: float
    decided: int = 0  # images with a human decision and a score
    keeps: int = 0
    # (threshold, precision, recall), thresholds rising; thinned to MAX_POINTS for the chart.
    points: list = field(default_factory=list)
    threshold: float | None = None  # suggested; None when no threshold reaches the target precision
    precision: float | None = None
    recall: float | None = None

    @property
    def empty(self):
        return self.decided == 0 or self.keeps in (0, self.decided)


def calibrate(scores, keeps, target=None, *, name="", lowest=None):
    """The curve and suggested threshold for `scores` against `keeps` (True where a person kept it).

    `lowest`: thresholds below it are not suggested (a VLM reject has a score below every min-score)."""
    from sklearn.metrics import precision_recall_curve

    target = settings.SCENEIMG_CALIBRATION_PRECISION if target is None else target
    scores = np.asarray(scores, dtype=np.float64)
    keeps = np.asarray(keeps, dtype=bool)
    result = Calibration(name=name, target=target, decided=len(scores), keeps=int(keeps.sum()))
    if result.empty:
        return result
    precision, recall, thresholds = precision_recall_curve(keeps, scores)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    allowed = np.ones(len(thresholds), dtype=bool) if lowest is None else thresholds >= lowest
    ok = np.flatnonzero((precision >= target) & allowed)
    if len(ok):
        # The most recall; among equal recall, the highest threshold (it lets in fewer rejects).
        best = ok[np.lexsort((-thresholds[ok], -recall[ok]))[0]]
        result.threshold = float(thresholds[best])
        result.precision, result.recall = float(precision[best]), float(recall[best])
    keep_rows = np.unique(np.linspace(0, len(thresholds) - 1, min(MAX_POINTS, len(thresholds))).round().astype(int))
    result.points = [(float(thresholds[i]), float(precision[i]), float(recall[i])) for i in keep_rows if allowed[i]]
    return result


def clip_indoor_margin(target=None):
    """The CLIP indoor margin (keep when margin >= threshold) against human decisions."""
    rows = Image.objects.filter(human_decision__isnull=False, clip_indoor_margin__isnull=False)
    pairs = list(rows.values_list("clip_indoor_margin", "human_decision"))
    return calibrate([m for m, _ in pairs], [h == Decision.KEEP for _, h in pairs], target, name="CLIP indoor margin")


def vlm_min_score(verdicts, target=None):
    """The VLM min-score, from [(verdict decision, score, human decision)]: a verdict counts as keep when
    it said keep with at least that score, so a reject (or a keep with no score) never does."""
    scores = [(score if score is not None else 0.0) if decision == Decision.KEEP else -1.0
              for decision, score, _ in verdicts]
    keeps = [human == Decision.KEEP for _, _, human in verdicts]
    return calibrate(scores, keeps, target, name="VLM min-score", lowest=0.0)


def polylines(result, width=320, height=140, pad=24):
    """SVG polyline points for precision and recall against the threshold, for a small chart."""
    if not result.points:
        return None
    lo, hi = result.points[0][0], result.points[-1][0]
    span = (hi - lo) or 1.0

    def xy(threshold, value):
        return f"{pad + (threshold - lo) / span * (width - 2 * pad):.1f},{height - pad - value * (height - 2 * pad):.1f}"

    return {
        "width": width, "height": height, "pad": pad, "low": lo, "high": hi,
        "precision": " ".join(xy(t, p) for t, p, _ in result.points),
        "recall": " ".join(xy(t, r) for t, _, r in result.points),
        "marker_x": None if result.threshold is None else xy(result.threshold, 0).split(",")[0],
    }
