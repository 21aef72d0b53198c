"""Rescoring every image from its stored embedding: a new prompt set or new margins, no image decoded.

A CLIP score is the cosine of the image embedding with a label's mean prompt embedding, so a new
prompt set only needs its few text embeddings and one matrix product over the stored image
embeddings (read from the vector index's segments, not row by row from the database). Rows are
written exactly as the CLIP pass writes them (`curation.scoring`), through the same writer: a rescored
image's FilterScore, margins and decision are those `filter_clip` would give it.

`manage.py rescore_clip`, its RQ job, its web form and the calibration page's "apply" call `rescore`.
"""
import numpy as np

from curation import vector_index
from curation.clip import get_clip_scorer, load_prompt_set, resolve_device
from curation.models import Image
from curation.scoring import DecisionRule, _Writer, scorer_key

WRITE_CHUNK = 2000  # images per database write (decisions.decide's own chunk)


class RescoreError(ValueError):
    """Parameters rescoring cannot honour; the message says what to do instead."""


def check_rule(rule):
    if rule.needs_detector:
        raise RescoreError("object counts need the pixels: use filter_clip with --object-count-min/max")


def rescore(tracker, *, rule=None, prompt_version=None, device=None):
    """Score every image that has an embedding under the configured model with `prompt_version`'s labels
    (default SCENEIMG_CLIP_PROMPTS) and decide it with `rule`. Returns counts and the scorer key."""
    rule = rule or DecisionRule()
    check_rule(rule)
    load_prompt_set(prompt_version)  # a missing prompt set fails before the model loads
    scorer = get_clip_scorer(resolve_device(device), prompt_version=prompt_version)
    vector_index.sync(scorer.embedding_key)  # embeddings stored since the last index run count too
    key = scorer_key(scorer)
    run_id = tracker.run.pk if tracker.run is not None else None
    writer = _Writer(key, scorer, rule, scorer.uncalibrated, run_id, False, None, None, tracker)
    state = vector_index.State.read(vector_index.key_dir(scorer.embedding_key))
    tracker.set_total(state.count)
    for ids, vectors in vector_index.iter_segments(scorer.embedding_key, state):
        for start in range(0, len(ids), WRITE_CHUNK):
            chunk_ids = ids[start:start + WRITE_CHUNK].tolist()
            # Images deleted since the segment was written are skipped.
            alive = set(Image.objects.filter(id__in=chunk_ids).values_list("id", flat=True))
            rows = [n for n, image_id in enumerate(chunk_ids) if image_id in alive]
            writer.from_embeddings([chunk_ids[n] for n in rows], np.asarray(vectors[start:start + WRITE_CHUNK])[rows])
            tracker.check_cancelled()
    missing = Image.objects.count() - state.count
    if missing > 0:
        tracker.count("no_embedding", missing)  # not rescored: `manage.py embed` first
    tracker.flush()
    return {"scorer_key": key, **{k: tracker.counts.get(k, 0) for k in ("kept", "rejected", "no_embedding")}}
