"""The CLIP (and optional object-count) filter stage: images in, FilterScore rows and decisions out.

One function, `score_images`, is called by `manage.py filter_clip`, by the RQ job and by tests.
It is a three-stage pipeline so the model never waits:

    decode threads  ->  one inference thread  ->  this thread (database writes, CSV, copies)

Decoding (Pillow with JPEG draft mode on the CPU, batched nvJPEG on CUDA) lives in curation.decode.
Every database query happens on the calling thread, so the stage also works inside a test's
transaction. Writes are upserts on (image, scorer_key): running it again changes nothing.
"""
import csv
import logging
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from numpy.dtypes import StringDType

from curation import decisions, embeddings, registry
from curation.clip import clip_key, get_clip_scorer, load_prompt_set, resolve_clip_spec, resolve_device
from curation.decode import decode_batch_cpu, decode_batch_tensor, read_stored
from curation.detector import detector_key, get_object_counter, resolve_detector_spec
from curation.models import AutoStage, Decision, FilterScore, Image, Run

log = logging.getLogger(__name__)

DETECTOR_DEFAULT_THRESHOLD = 0.5


# --- the decision rule --------------------------------------------------------------------------

@dataclass(frozen=True)
class DecisionRule:
    """The seed's filter_basic.py rule. Moderate and object-count checks apply only when given."""

    indoor_margin: float = 0.0
    moderate_margin: float | None = None
    object_count_min: int | None = None
    object_count_max: int | None = None
    detector_threshold: float = DETECTOR_DEFAULT_THRESHOLD

    @property
    def needs_detector(self):
        return self.object_count_min is not None or self.object_count_max is not None

    def margin_failures(self, indoor_margin, moderate_margin):
        failures = []
        if indoor_margin < self.indoor_margin:
            failures.append(f"indoor margin {indoor_margin:.4f} < {self.indoor_margin:g}")
        if self.moderate_margin is not None and (moderate_margin is None or moderate_margin < self.moderate_margin):
            failures.append(f"moderate margin {_fmt(moderate_margin)} < {self.moderate_margin:g}")
        return failures

    def decide(self, indoor_margin, moderate_margin, object_count=None):
        """(passed, reason) for one image's margins and count."""
        failures = self.margin_failures(indoor_margin, moderate_margin)
        if self.needs_detector:
            if object_count is None:
                failures.append("no object count")
            else:
                if self.object_count_min is not None and object_count < self.object_count_min:
                    failures.append(f"{object_count} objects < {self.object_count_min}")
                if self.object_count_max is not None and object_count > self.object_count_max:
                    failures.append(f"{object_count} objects > {self.object_count_max}")
        if failures:
            return False, "clip: " + "; ".join(failures)
        return True, f"clip: indoor margin {indoor_margin:.4f} >= {self.indoor_margin:g}"

    def decide_many(self, indoor, moderate):
        """decide() over arrays of margins, for stored embeddings (no object counts): (passed, reasons), a
        bool array and a string array with exactly what decide() says of each image."""
        passed, said, inverse = self.decide_distinct(indoor, moderate)
        return passed, np.array(said, dtype=StringDType())[inverse]

    def decide_distinct(self, indoor, moderate):
        """decide() once per distinct margin (scores are rounded: a million images have far fewer):
        (passed per image, the distinct reasons, each image's index into them)."""
        if self.needs_detector:
            raise ValueError("object counts need the pixels: decide those images one at a time")
        if self.moderate_margin is None:  # the moderate margin plays no part
            distinct, inverse = np.unique(indoor, return_inverse=True)
            said = [self.decide(i, None) for i in distinct.tolist()]
        else:
            distinct, inverse = np.unique(np.stack([indoor, moderate], axis=1), axis=0, return_inverse=True)
            said = [self.decide(i, m) for i, m in distinct.tolist()]
        inverse = inverse.reshape(-1)
        passed = np.fromiter((ok for ok, _ in said), dtype=bool, count=len(said))[inverse]
        return passed, [reason for _, reason in said], inverse

    def as_params(self):
        return asdict(self)


def _fmt(value):
    return "none" if value is None else f"{value:.4f}"


def margins(scores):
    """Indoor margin (indoor - outdoor) and moderate margin (moderate - max(tidy, messy))."""
    indoor = scores["indoor"] - scores["outdoor"]
    moderate = scores["moderate"] - max(scores["tidy"], scores["messy"])
    return float(indoor), float(moderate)


def rounded_scores(sims):
    """The stored score values: similarities as float64 rounded to 6 decimals, on every path alike."""
    return np.round(np.asarray(sims, dtype=np.float64), 6)


def margins_many(rounded, labels):
    """margins() for each row of `rounded` (columns in `labels` order): (indoor, moderate) arrays."""
    col = {label: rounded[:, j] for j, label in enumerate(labels)}
    return col["indoor"] - col["outdoor"], col["moderate"] - np.maximum(col["tidy"], col["messy"])


def scorer_key(scorer, counter=None, threshold=DETECTOR_DEFAULT_THRESHOLD):
    """Names model, weights and prompt set version, plus detector settings when it ran."""
    key = scorer.key
    if counter is not None:
        key += "|" + counter.key(threshold)
    return key[:200]


def key_for_settings(rule):
    """The scorer key the current settings would write, without building a model (to select inputs)."""
    key = clip_key(resolve_clip_spec(), load_prompt_set().version)
    if rule.needs_detector:
        key += "|" + detector_key(resolve_detector_spec(), rule.detector_threshold)
    return key[:200]


# --- the stage ----------------------------------------------------------------------------------

@dataclass
class _Batch:
    by_id: dict  # id -> (id, file name)
    todo: list  # ids that need inference
    reuse: dict  # id -> stored FilterScore values for images already scored under this key
    stored: dict = field(default_factory=dict)  # id -> stored embedding, for images scored without the model


def default_batch_size(device):
    return settings.SCENEIMG_CLIP_BATCH_SIZE or (256 if device.startswith("cuda") else 32)


def score_images(tracker, image_ids, *, rule=None, device=None, batch_size=None, log_csv=None,
                 output_dir=None, set_total=True):
    """Score `image_ids` with CLIP (and the detector when the rule bounds object counts).

    Writes one FilterScore per image under this scorer key (an upsert: reruns change nothing; images
    already scored under the key are only re-decided, not re-run), the Image's denormalised margins,
    count and uncalibrated flag, and its auto decision (human decisions stay as they are). With
    `log_csv`, appends the seed's clip_filter_log.csv rows; with `output_dir`, copies kept files.
    """
    rule = rule or DecisionRule()
    device = resolve_device(device)
    scorer = get_clip_scorer(device)
    counter = None
    if rule.needs_detector:
        counter = get_object_counter(device)
    key = scorer_key(scorer, counter, rule.detector_threshold)
    uncalibrated = scorer.uncalibrated or (counter is not None and counter.uncalibrated)
    batch_size = batch_size or default_batch_size(device)
    ids = sorted(set(int(i) for i in image_ids))
    if set_total:
        tracker.set_total(len(ids))
    run_id = tracker.run.pk if tracker.run is not None else None

    writer = _Writer(key, scorer, rule, uncalibrated, run_id, counter is not None, log_csv, output_dir, tracker)
    pipeline = _Pipeline(scorer, counter, rule, device)
    # A stored embedding stands in for the image, unless the detector must look at the pixels anyway.
    reuse_embeddings = counter is None

    def prepare(chunk):
        return _prepare(chunk, key, scorer.embedding_key if reuse_embeddings else None)

    try:
        pipeline.run([ids[i:i + batch_size] for i in range(0, len(ids), batch_size)], prepare, writer, tracker)
    finally:
        pipeline.close()
        writer.close()
    tracker.flush()
    return {"scorer_key": key, **{k: tracker.counts.get(k, 0) for k in ("kept", "rejected", "error")}}


class _Pipeline:
    """Reading and decoding threads, one inference thread, and the calling thread writing results.

    A few batches are decoded ahead, and the model works on one batch while the calling thread
    writes the one before, so neither the model nor the database waits on the other.
    """

    def __init__(self, scorer, counter, rule, device):
        self.scorer, self.counter, self.rule, self.device = scorer, counter, rule, device
        self.detector_threshold = rule.detector_threshold
        self.on_gpu = device.startswith("cuda")
        self.detector_size = counter.spec.min_size if counter is not None else None
        self.prefetch = 3 if self.on_gpu else 2
        cpus = os.cpu_count() or 2
        # On CUDA the device decodes a whole batch in one call, so one thread is enough; on the CPU
        # decoders take at most half the cores and leave the rest to torch.
        decoders = 1 if self.on_gpu else max(1, min(4, cpus // 2))
        self.io_pool = ThreadPoolExecutor(max_workers=min(16, cpus * 2), thread_name_prefix="clip-io")
        self.decode_pool = ThreadPoolExecutor(max_workers=decoders, thread_name_prefix="clip-decode")
        self.infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-infer")

    def close(self):
        for pool in (self.decode_pool, self.infer_pool, self.io_pool):
            pool.shutdown(wait=True, cancel_futures=True)

    def load(self, batch):
        names = [batch.by_id[i][1] for i in batch.todo]
        items = list(zip(batch.todo, names, self.io_pool.map(read_stored, names), strict=True))
        size = self.scorer.image_size
        if not self.on_gpu:
            return decode_batch_cpu(items, size, self.detector_size)
        import torch

        stream = torch.cuda.Stream(device=self.device)
        with torch.cuda.stream(stream):
            out = decode_batch_tensor(items, size, self.device, self.detector_size)
        stream.synchronize()  # the inference thread uses the default stream
        return out

    def infer(self, decoded):
        ids_ok, batch, dets, failures = decoded
        if batch is None:
            return ids_ok, None, None, failures
        embedded = self.scorer.encode_images(batch)
        counts = self.count_passed(embedded, dets) if self.counter is not None else None
        return ids_ok, embedded, counts, failures

    def count_passed(self, embedded, dets):
        """Object counts for the images whose CLIP margins pass (None for the rest): as in the original,
        the detector, about 15 times slower than CLIP, looks only at what CLIP kept."""
        sims = self.scorer.scores_from_embeddings(embedded)
        labels = self.scorer.prompts.label_names
        passing = [n for n in range(len(dets)) if not self.rule.margin_failures(
            *margins({label: float(sims[n, j]) for j, label in enumerate(labels)}))]
        counted = dict(zip(passing, self.counter.count([dets[n] for n in passing], self.detector_threshold),
                           strict=True)) if passing else {}
        return [counted.get(n) for n in range(len(dets))]

    def run(self, chunks, prepare, writer, tracker):
        """`prepare(chunk)` -> _Batch says which images need the model; `writer` gets the rest."""
        decoding = deque()
        next_chunk = 0
        pending_infer = None
        while next_chunk < len(chunks) or decoding or pending_infer is not None:
            while next_chunk < len(chunks) and len(decoding) < self.prefetch:
                batch = prepare(chunks[next_chunk])
                next_chunk += 1
                writer.reuse(batch)
                fut = self.decode_pool.submit(self.load, batch) if batch.todo else None
                decoding.append((batch, fut))
            current = None
            if decoding:
                batch, fut = decoding.popleft()
                if fut is not None:
                    current = (batch, self.infer_pool.submit(self.infer, fut.result()))
            # The model works on `current` while this thread writes the previous batch.
            if pending_infer is not None:
                prev_batch, prev_fut = pending_infer
                writer.write(prev_batch, *prev_fut.result())
                tracker.check_cancelled()
            pending_infer = current


def _prepare(chunk, key, embedding_key=None):
    """Which images of `chunk` are scored already (re-decided only), which have a stored embedding under
    `embedding_key` (scored from it, no decoding), and which need the model."""
    rows = list(Image.objects.filter(id__in=chunk).order_by("id").values_list("id", "file"))
    existing = {
        row["image_id"]: row
        for row in FilterScore.objects.filter(scorer_key=key, image_id__in=chunk).values(
            "image_id", "scores", "indoor_margin", "moderate_margin", "object_count")
    }
    todo = [r[0] for r in rows if r[0] not in existing]
    stored = embeddings.load_map(embedding_key, todo) if embedding_key and todo else {}
    todo = [i for i in todo if i not in stored]
    return _Batch(by_id={r[0]: r for r in rows}, todo=todo, reuse=existing, stored=stored)


class _Writer:
    """Everything that happens on the calling thread once scores are known."""

    def __init__(self, key, scorer, rule, uncalibrated, run_id, with_counts, log_csv, output_dir, tracker):
        self.key, self.scorer, self.labels, self.rule = key, scorer, scorer.prompts.label_names, rule
        self.uncalibrated, self.run_id, self.with_counts = uncalibrated, run_id, with_counts
        self.tracker = tracker
        self.output_dir = Path(output_dir) if output_dir else None
        if self.output_dir:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        self.csv_file = self.csv = None
        if log_csv:
            new = not os.path.exists(log_csv) or os.path.getsize(log_csv) == 0
            self.csv_file = open(log_csv, "a", newline="", encoding="utf-8")
            self.csv = csv.writer(self.csv_file)
            if new:
                self.csv.writerow(csv_columns(self.labels))

    def close(self):
        if self.csv_file:
            self.csv_file.close()

    def reuse(self, batch):
        """Images already scored under this key: decide again (the rule may differ), no inference. Images
        with a stored embedding: scored from it, no decoding."""
        if batch.reuse:
            results = [(i, v["scores"], v["object_count"]) for i, v in batch.reuse.items() if i in batch.by_id]
            self._store(batch, results)
        if batch.stored:
            ids = list(batch.stored)
            self.from_embeddings(ids, [batch.stored[i] for i in ids], batch.by_id)

    def from_embeddings(self, ids, embedded, by_id=None):
        """Score and decide images from their stored embeddings: no decoding, the same rows as from pixels."""
        by_id = by_id or {i: (i, "") for i in ids}
        self._store(_Batch(by_id=by_id, todo=[], reuse={}), self._results(ids, embedded, None))

    def write(self, batch, ids_ok, embedded, counts, failures):
        for image_id, error in failures:
            log.warning("image #%s could not be decoded: %s", image_id, error)
        if failures:
            self.tracker.count("error", len(failures))
        if embedded is None:
            return
        embeddings.store(self.scorer.embedding_key, ids_ok, embedded)
        self._store(batch, self._results(ids_ok, embedded, counts))

    def _results(self, ids, embedded, counts):
        rounded = rounded_scores(self.scorer.scores_from_embeddings(embedded)).tolist()
        return [(image_id, dict(zip(self.labels, rounded[n], strict=True)),
                 counts[n] if counts is not None else None) for n, image_id in enumerate(ids)]

    def _store(self, batch, results):
        scores_rows, image_rows, kept = [], [], []
        for image_id, scores, count in results:
            indoor, moderate = margins(scores)
            passed, reason = self.rule.decide(indoor, moderate, count)
            scores_rows.append(FilterScore(
                image_id=image_id, scorer_key=self.key, scores=scores, indoor_margin=indoor,
                moderate_margin=moderate, object_count=count, passed=passed,
                uncalibrated=self.uncalibrated, run_id=self.run_id,
            ))
            name = batch.by_id[image_id][1]
            row = {"id": image_id, "decision": Decision.KEEP if passed else Decision.REJECT, "reason": reason,
                   "clip_indoor_margin": indoor, "clip_moderate_margin": moderate, "uncalibrated": self.uncalibrated}
            if self.with_counts:
                row["object_count"] = count
            image_rows.append(row)
            if self.csv:
                self.csv.writerow(
                    [name, image_id, *(f"{scores[label]:.6f}" for label in self.labels),
                     f"{indoor:.6f}", f"{moderate:.6f}", "" if count is None else count,
                     "keep" if passed else "reject"]
                )
            if passed:
                kept.append(name)
            self.tracker.count("kept" if passed else "rejected")
        FilterScore.objects.bulk_create(
            scores_rows, update_conflicts=True, unique_fields=["image", "scorer_key"],
            update_fields=["scores", "indoor_margin", "moderate_margin", "object_count", "passed", "uncalibrated"],
        )
        base = ["clip_indoor_margin", "clip_moderate_margin", "uncalibrated"] + (
            ["object_count"] if self.with_counts else [])
        # Copies of seeds, near-duplicates and VLM verdicts keep their decision: the rule says so.
        decisions.decide(AutoStage.CLIP, image_rows, extra_fields=base)
        if self.csv_file:
            self.csv_file.flush()
        if self.output_dir:
            for name in kept:
                self._copy(name)

    def _copy(self, name):
        target = self.output_dir / Path(name).name
        if target.exists():
            return
        with default_storage.open(name, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def csv_columns(labels):
    """The seed's clip_filter_log.csv: file, each prompt's score, margins, object count, decision."""
    return ["file", "image_id", *labels, "indoor_margin", "moderate_margin", "object_count", "decision"]


# --- choosing the input -------------------------------------------------------------------------

class InputError(ValueError):
    pass


def select_image_ids(input_spec, key, limit=None):
    """--input: a run id, an import label, or "all" (every image not yet scored under `key`)."""
    spec = str(input_spec).strip()
    if spec.lower() == "all":
        qs = Image.objects.exclude(id__in=FilterScore.objects.filter(scorer_key=key).values("image_id"))
    elif spec.isdigit() or (spec.startswith("#") and spec[1:].isdigit()):
        run_id = int(spec.lstrip("#"))
        if not Run.objects.filter(pk=run_id).exists():
            raise InputError(f"--input {spec}: there is no run #{run_id}")
        qs = Image.objects.filter(id__in=_run_image_ids(Run.objects.filter(pk=run_id)))
    else:
        runs = Run.objects.filter(label=spec)
        if not runs.exists():
            raise InputError(f"--input {spec!r}: no run has this label (give a run id, a label, or 'all')")
        qs = Image.objects.filter(id__in=_run_image_ids(runs))
    qs = qs.order_by("id").values_list("id", flat=True)
    if limit:
        qs = qs[:limit]
    return list(qs)


def _run_image_ids(runs):
    """Images a run scored (its FilterScores) or, through the registered apps, brought in (Sources)."""
    ids = set(FilterScore.objects.filter(run__in=runs).values_list("image_id", flat=True))
    for image_ids in registry.run_image_querysets(runs):
        ids |= set(image_ids.values_list("image_id", flat=True))
    return ids
