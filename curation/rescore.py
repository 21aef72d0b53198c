"""Rescoring every image from its stored embedding: a new prompt set or new margins, no image decoded.

A CLIP score is the cosine of the image embedding with a label's mean prompt embedding, so a new
prompt set only needs its few text embeddings and one matrix product over the stored image
embeddings (read from the vector index's segments, not row by row from the database). Scores, margins
and decisions are computed for 50,000 images at a time with array operations. On Postgres the rows go
in by COPY into a temporary table, then one upsert of the FilterScores and one UPDATE through the
decision rule (`decisions.decide_table`), two such chunks at a time on two connections; elsewhere
through the CLIP writer itself. Either way a rescored image's FilterScore, margins and decision are
those `filter_clip` would give it.

`manage.py rescore_clip`, its RQ job, its web form and the calibration page's "apply" call `rescore`.
"""
import json
from collections import deque
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from numpy.dtypes import StringDType

from curation import decisions, vector_index
from curation.clip import get_clip_scorer, load_prompt_set, resolve_device
from curation.models import AutoStage, FilterScore, Image
from curation.scoring import DecisionRule, _Writer, margins_many, rounded_scores, scorer_key
from curation.threads import db_pool

BLOCK = 500_000  # images scored at a time: the more, the fewer distinct values to format (rounded scores repeat)
SCORE_CHUNK = 50_000  # embeddings widened to float32 at a time (100 MB)
WRITE_CHUNK = 2000  # images per database write on the portable path (decisions.decide's own chunk)
COPY_CHUNK = 50_000  # images per transaction on Postgres: row locks held a second or two, not a minute
# Chunks written at once on Postgres, each in its own transaction on its own connection. Postgres runs an
# UPDATE on one core; two halved the time of 100,000 image updates on 2 cores (6.1 s to 3.2 s).
WRITERS = 2
TEMP_TABLE = "rescore_rows"


class RescoreError(ValueError):
    """Parameters rescoring cannot honour; the message says what to do instead."""


def check_rule(rule):
    if rule.needs_detector:
        raise RescoreError("object counts need the pixels: use filter_clip with --object-count-min/max")


@dataclass
class Scored:
    """One chunk of images scored from their embeddings: every value the CLIP writer would store."""

    ids: np.ndarray
    rounded: np.ndarray  # [n, labels] float64, the stored scores
    indoor: np.ndarray
    moderate: np.ndarray
    passed: np.ndarray
    reasons: list  # the distinct reasons
    reason_index: np.ndarray  # each image's index into them


def score_chunk(scorer, rule, ids, vectors):
    """Scores, margins and decisions for a block of embeddings: matrix products, no loop per image."""
    rounded = rounded_scores(np.concatenate([scorer.scores_from_embeddings(np.asarray(vectors[s:s + SCORE_CHUNK]))
                                             for s in range(0, len(ids), SCORE_CHUNK)]))
    indoor, moderate = margins_many(rounded, scorer.prompts.label_names)
    passed, reasons, reason_index = rule.decide_distinct(indoor, moderate)
    return Scored(np.asarray(ids), rounded, indoor, moderate, passed, reasons, reason_index)


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
    if connection.vendor == "postgresql":
        write = _CopyWriter(key, scorer, rule, run_id, tracker)
    else:
        write = _portable_writer(_Writer(key, scorer, rule, scorer.uncalibrated, run_id, False, None, None, tracker))
    state = vector_index.State.read(vector_index.key_dir(scorer.embedding_key))
    tracker.set_total(state.count)
    for ids, vectors in vector_index.iter_segments(scorer.embedding_key, state):
        for start in range(0, len(ids), BLOCK):
            write(ids[start:start + BLOCK], vectors[start:start + BLOCK])
    missing = Image.objects.count() - state.count
    if missing > 0:
        tracker.count("no_embedding", missing)  # not rescored: `manage.py embed` first
    tracker.flush()
    return {"scorer_key": key, **{k: tracker.counts.get(k, 0) for k in ("kept", "rejected", "no_embedding")}}


def _portable_writer(writer):
    """SQLite and the rest: the CLIP writer's own rows, a few thousand images per statement."""
    def write(ids, vectors):
        for start in range(0, len(ids), WRITE_CHUNK):
            chunk = ids[start:start + WRITE_CHUNK].tolist()
            # Images deleted since the segment was written are skipped.
            alive = set(Image.objects.filter(id__in=chunk).values_list("id", flat=True))
            rows = [n for n, image_id in enumerate(chunk) if image_id in alive]
            writer.from_embeddings([chunk[n] for n in rows], np.asarray(vectors[start:start + WRITE_CHUNK])[rows])
            writer.tracker.check_cancelled()
    return write


class _CopyWriter:
    """Postgres: a chunk's rows by COPY into a temporary table, then set-based writes from it."""

    def __init__(self, key, scorer, rule, run_id, tracker):
        self.key, self.scorer, self.rule, self.run_id, self.tracker = key, scorer, rule, run_id, tracker
        self.uncalibrated = bool(scorer.uncalibrated)
        # One JSON object per row, the labels' values formatted as json.dumps would (repr of a float).
        self.template = "{" + ", ".join(f"{json.dumps(label)}: %r" for label in scorer.prompts.label_names) + "}"

    def lines(self, scored):
        """The COPY text, a line per image: id, scores (JSON), margins, passed, decision, reason. Numbers
        are written as json.dumps writes them (repr), each distinct value formatted once with the text
        around it; numpy's string functions put the lines together, not a Python loop per image."""
        labels = self.scorer.prompts.label_names
        line = scored.ids.astype(StringDType())
        for j, label in enumerate(labels):
            before = ("\t{" if j == 0 else ", ") + _copy_text(json.dumps(label)) + ": "
            line = np.strings.add(line, _formatted(scored.rounded[:, j], before, "}" if j == len(labels) - 1 else ""))
        line = np.strings.add(line, _formatted(scored.indoor, "\t"))
        line = np.strings.add(line, _formatted(scored.moderate, "\t"))
        line = np.strings.add(line, np.array(["\tf\treject\t", "\tt\tkeep\t"], dtype=StringDType())[
            scored.passed.astype(np.intp)])
        reasons = [r[:500] for r in scored.reasons]
        if any(c in "".join(reasons) for c in "\\\t\n\r"):
            reasons = [_copy_text(r) for r in reasons]
        reasons = np.array([r + "\n" for r in reasons], dtype=StringDType())
        return np.strings.add(line, reasons[scored.reason_index]).tolist()

    def __call__(self, ids, vectors):
        scored = score_chunk(self.scorer, self.rule, ids, vectors)
        lines = self.lines(scored)
        texts = ("".join(lines[start:start + COPY_CHUNK]) for start in range(0, len(lines), COPY_CHUNK))
        if connection.in_atomic_block:  # the caller's transaction: other connections would not see its rows
            for text in texts:
                self.counted(self.write(text))
                self.tracker.check_cancelled()
            return
        with db_pool(WRITERS, "rescore-write") as pool:
            pending = deque()
            for text in texts:
                if len(pending) == WRITERS:  # no more in hand than are being written: a cancel waits for those only
                    self.counted(pending.popleft().result())
                self.tracker.check_cancelled()
                pending.append(pool.submit(self.write, text))
            while pending:
                self.counted(pending.popleft().result())
        self.tracker.check_cancelled()

    def counted(self, kept_rejected):
        self.tracker.count("kept", kept_rejected[0])
        self.tracker.count("rejected", kept_rejected[1])

    def write(self, text):
        """One chunk in one transaction; returns (kept, rejected) among its images."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {TEMP_TABLE} (id bigint, scores jsonb, "
                           "indoor double precision, moderate double precision, passed boolean, decision varchar(8), "
                           "reason varchar(500)) ON COMMIT DELETE ROWS")
            cursor.execute(f"TRUNCATE {TEMP_TABLE}")  # rows of an earlier chunk in this same transaction
            with cursor.cursor.copy(f"COPY {TEMP_TABLE} (id, scores, indoor, moderate, passed, decision, reason) "
                                    "FROM STDIN") as copy:
                copy.write(text)
            kept, rejected = self.upsert_scores(cursor)
            decisions.decide_table(AutoStage.CLIP, TEMP_TABLE, {
                "clip_indoor_margin": "v.indoor", "clip_moderate_margin": "v.moderate",
                "uncalibrated": "TRUE" if self.uncalibrated else "FALSE"})
        return kept, rejected

    def upsert_scores(self, cursor):
        """FilterScores as the CLIP writer's bulk upsert writes them; images deleted meanwhile are skipped,
        and so are rows that would not change (new margins leave every score as it was). Returns (kept,
        rejected) among the images rescored."""
        fs, images = FilterScore._meta.db_table, Image._meta.db_table
        columns = ("scores", "indoor_margin", "moderate_margin", "object_count", "passed", "uncalibrated")
        cursor.execute(
            f"INSERT INTO {fs} (image_id, scorer_key, scores, indoor_margin, moderate_margin, "
            "object_count, passed, uncalibrated, run_id, created_at) "
            f"SELECT v.id, %s::varchar, v.scores, v.indoor, v.moderate, NULL, v.passed, %s::boolean, %s::bigint, now() "
            f"FROM {TEMP_TABLE} v JOIN {images} i ON i.id = v.id "
            "ON CONFLICT (image_id, scorer_key) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
            + f" WHERE ({', '.join(f'{fs}.{c}' for c in columns)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in columns)})",
            [self.key, self.uncalibrated, self.run_id])
        cursor.execute(f"SELECT count(*) FILTER (WHERE v.passed), count(*) FILTER (WHERE NOT v.passed) "
                       f"FROM {TEMP_TABLE} v JOIN {images} i ON i.id = v.id")
        return cursor.fetchone()


def _formatted(values, before="", after=""):
    """repr() of each float with text around it, as a numpy string array: each distinct value once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    return np.array([f"{before}{v!r}{after}" for v in distinct.tolist()], dtype=StringDType())[inverse.reshape(-1)]


def _copy_text(value):
    """A string in COPY's text format: backslash, tab, newline and carriage return escaped."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        value = value.replace(raw, escaped)
    return value
