"""The CLIP (and optional object-count) filter stage: images in, FilterScore rows and decisions out.

One function, `score_images`, is called by `manage.py filter_clip`, by the RQ job and by tests.
It is a three-stage pipeline so the model never waits:

    decode threads  ->  one inference thread  ->  this thread (database writes, CSV, copies)

On the CPU, decoding is Pillow with JPEG draft mode (libjpeg decodes at 1/2, 1/4 or 1/8 scale), so
it costs a few ms per image beside ~50 ms of ViT-B-32; on CUDA, JPEGs are decoded in batches on the
GPU (torchvision.io.decode_jpeg with a device) and resized there, other formats fall back to Pillow.
Every database query happens on the calling thread, so the stage also works inside a test's
transaction. Writes are upserts on (image, scorer_key): running it again changes nothing.
"""
import csv
import logging
import math
import os
import shutil
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from curation.bulk_update import update_rows
from curation.clip import get_clip_scorer, resolve_device
from curation.models import Decision, FilterScore, Image
from curation.neardup import SEED_COPY_PREFIX

log = logging.getLogger(__name__)
# torchvision 0.29 points to torchcodec for decoding; its batched GPU decode_jpeg is still what we want.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

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

    def decide(self, indoor_margin, moderate_margin, object_count=None):
        """(passed, reason) for one image's margins and count."""
        failures = []
        if indoor_margin < self.indoor_margin:
            failures.append(f"indoor margin {indoor_margin:.4f} < {self.indoor_margin:g}")
        if self.moderate_margin is not None and (moderate_margin is None or moderate_margin < self.moderate_margin):
            failures.append(f"moderate margin {_fmt(moderate_margin)} < {self.moderate_margin:g}")
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

    def as_params(self):
        return asdict(self)


def _fmt(value):
    return "none" if value is None else f"{value:.4f}"


def margins(scores):
    """Indoor margin (indoor - outdoor) and moderate margin (moderate - max(tidy, messy))."""
    indoor = scores["indoor"] - scores["outdoor"]
    moderate = scores["moderate"] - max(scores["tidy"], scores["messy"])
    return float(indoor), float(moderate)


def scorer_key(scorer, counter=None, threshold=DETECTOR_DEFAULT_THRESHOLD):
    """Names model, weights and prompt set version, plus detector settings when it ran."""
    key = scorer.key
    if counter is not None:
        key += "|" + counter.key(threshold)
    return key[:200]


def key_for_settings(rule):
    """The scorer key the current settings would write, without building a model (to select inputs)."""
    from curation.clip import clip_key, load_prompt_set, resolve_clip_spec

    key = clip_key(resolve_clip_spec(), load_prompt_set().version)
    if rule.needs_detector:
        from curation.detector import detector_key, resolve_detector_spec

        key += "|" + detector_key(resolve_detector_spec(), rule.detector_threshold)
    return key[:200]


# --- decoding -----------------------------------------------------------------------------------

def _read(name):
    """The file's bytes, or the exception that stopped us (a missing file fails one image, not the run)."""
    try:
        with default_storage.open(name, "rb") as fh:
            return fh.read()
    except Exception as exc:
        return exc


def _short_side_resize(w, h, size):
    """open_clip's 'shortest' resize: the short side becomes `size`, the long side keeps the aspect."""
    if w <= h:
        return size, max(size, int(size * h / w))
    return max(size, int(size * w / h)), size


def decode_pil(data, size, detector_size=None):
    """CPU path: (uint8 [3, size, size] numpy, detector float tensor or None)."""
    import io

    im = PILImage.open(io.BytesIO(data))
    w, h = im.size
    want = max(size, detector_size or 0)
    if im.format == "JPEG":
        # Ask libjpeg for the smallest scale whose short side still covers what we need.
        scale = want / min(w, h)
        im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
    im = im.convert("RGB")
    det = None
    if detector_size:
        det = _detector_tensor(im, detector_size)
    # Resize only the centre crop's source box: the same pixels as resize-then-crop, half the work.
    nw, nh = _short_side_resize(im.width, im.height, size)
    sx, sy = im.width / nw, im.height / nh
    left, top = (nw - size) // 2, (nh - size) // 2
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    im = im.resize((size, size), PILImage.BICUBIC, box=box)
    return np.asarray(im).transpose(2, 0, 1), det


def _detector_tensor(im, detector_size):
    import torch

    if min(im.size) > detector_size:
        nw, nh = _short_side_resize(im.width, im.height, detector_size)
        im = im.resize((nw, nh), PILImage.BILINEAR)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().div_(255.0)


def decode_batch_cpu(items, size, detector_size=None):
    """items: [(id, name, data)] -> (ids, uint8 tensor [B, 3, S, S], detector inputs, failures)."""
    import torch

    ids, arrays, dets, failures = [], [], [], []
    for image_id, _name, data in items:
        if isinstance(data, Exception):
            failures.append((image_id, f"unreadable: {type(data).__name__}: {data}"))
            continue
        try:
            arr, det = decode_pil(data, size, detector_size)
        except Exception as exc:  # a damaged file must not sink its batch
            failures.append((image_id, f"{type(exc).__name__}: {exc}"))
            continue
        ids.append(image_id)
        arrays.append(arr)
        dets.append(det)
    batch = torch.from_numpy(np.stack(arrays)) if arrays else None
    return ids, batch, (dets if detector_size else None), failures


def decode_batch_tensor(items, size, device, detector_size=None):
    """GPU path: JPEGs decoded in one batched torchvision.io.decode_jpeg call on `device`, others with
    Pillow; every image resized on the device, images of the same shape in one interpolate call."""
    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    ids, tensors, failures = [], [], []
    for image_id, _name, data in items:
        if isinstance(data, Exception):
            failures.append((image_id, f"unreadable: {type(data).__name__}: {data}"))
    items = [item for item in items if not isinstance(item[2], Exception)]
    jpeg_idx = [i for i, (_, _, data) in enumerate(items) if data[:3] == b"\xff\xd8\xff"]
    decoded = {}
    if jpeg_idx:
        raw = [torch.frombuffer(bytearray(items[i][2]), dtype=torch.uint8) for i in jpeg_idx]
        try:
            out = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
            decoded.update(zip(jpeg_idx, out, strict=True))
        except Exception:  # one bad file fails the whole batched call: retry one by one
            for i, r in zip(jpeg_idx, raw, strict=True):
                try:
                    decoded[i] = decode_jpeg(r, mode=ImageReadMode.RGB, device=device)
                except Exception:
                    pass  # falls through to Pillow below
    for i, (image_id, _, data) in enumerate(items):
        t = decoded.get(i)
        if t is None:
            try:
                import io

                im = PILImage.open(io.BytesIO(data)).convert("RGB")
                t = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).to(device, non_blocking=True)
            except Exception as exc:
                failures.append((image_id, f"{type(exc).__name__}: {exc}"))
                continue
        ids.append(image_id)
        tensors.append(t)
    if not tensors:
        return ids, None, None, failures
    batch = torch.empty((len(tensors), 3, size, size), dtype=torch.float32, device=device)
    by_shape = {}
    for j, t in enumerate(tensors):
        by_shape.setdefault(tuple(t.shape), []).append(j)
    for (_, h, w), idx in by_shape.items():
        stack = torch.stack([tensors[j] for j in idx]).float()
        nw, nh = _short_side_resize(w, h, size)
        stack = F.interpolate(stack, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        batch[idx] = stack[:, :, top:top + size, left:left + size].clamp_(0, 255)
    dets = None
    if detector_size:
        dets = []
        for t in tensors:
            h, w = t.shape[-2:]
            x = t.float().div_(255.0)
            if min(h, w) > detector_size:
                nw, nh = _short_side_resize(w, h, detector_size)
                x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", antialias=True)[0]
            dets.append(x)
    return ids, batch, dets, failures


# --- the stage ----------------------------------------------------------------------------------

@dataclass
class _Batch:
    by_id: dict  # id -> (id, file name, human_decision, dup_group_id, auto_reason)
    todo: list  # ids that need inference
    reuse: dict  # id -> stored FilterScore values for images already scored under this key


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
        from curation.detector import get_object_counter

        counter = get_object_counter(device)
    key = scorer_key(scorer, counter, rule.detector_threshold)
    uncalibrated = scorer.uncalibrated or (counter is not None and counter.uncalibrated)
    batch_size = batch_size or default_batch_size(device)
    ids = sorted(set(int(i) for i in image_ids))
    if set_total:
        tracker.set_total(len(ids))
    run_id = tracker.run.pk if tracker.run is not None else None
    labels = scorer.prompts.label_names

    writer = _Writer(key, labels, rule, uncalibrated, run_id, counter is not None, log_csv, output_dir, tracker)
    on_gpu = device.startswith("cuda")
    detector_size = counter.spec.min_size if counter is not None else None
    n_decoders = 1 if on_gpu else max(1, min(4, (os.cpu_count() or 2) // 2))
    io_pool = ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 2) * 2), thread_name_prefix="clip-io")
    decode_pool = ThreadPoolExecutor(max_workers=n_decoders, thread_name_prefix="clip-decode")
    infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-infer")

    def load(batch):
        names = [batch.by_id[i][1] for i in batch.todo]
        items = list(zip(batch.todo, names, io_pool.map(_read, names), strict=True))
        if on_gpu:
            import torch

            stream = torch.cuda.Stream(device=device)
            with torch.cuda.stream(stream):
                out = decode_batch_tensor(items, scorer.image_size, device, detector_size)
            stream.synchronize()  # the inference thread uses the default stream
            return out
        return decode_batch_cpu(items, scorer.image_size, detector_size)

    def infer(decoded):
        ids_ok, batch, dets, failures = decoded
        if batch is None:
            return ids_ok, None, None, failures
        sims = scorer.score(batch)
        counts = counter.count(dets, rule.detector_threshold) if counter is not None else None
        return ids_ok, sims, counts, failures

    chunks = [ids[i:i + batch_size] for i in range(0, len(ids), batch_size)]
    prefetch = 3 if on_gpu else 2
    decoding = deque()
    next_chunk = 0
    pending_infer = None
    try:
        while next_chunk < len(chunks) or decoding or pending_infer is not None:
            while next_chunk < len(chunks) and len(decoding) < prefetch:
                batch = _prepare(chunks[next_chunk], key)
                next_chunk += 1
                writer.reuse(batch)
                fut = decode_pool.submit(load, batch) if batch.todo else None
                decoding.append((batch, fut))
            current = None
            if decoding:
                batch, fut = decoding.popleft()
                if fut is not None:
                    current = (batch, infer_pool.submit(infer, fut.result()))
            # The model works on `current` while this thread writes the previous batch.
            if pending_infer is not None:
                prev_batch, prev_fut = pending_infer
                writer.write(prev_batch, *prev_fut.result())
                tracker.check_cancelled()
            pending_infer = current
    finally:
        for pool in (decode_pool, infer_pool, io_pool):
            pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
    tracker.flush()
    return {"scorer_key": key, **{k: tracker.counts.get(k, 0) for k in ("kept", "rejected", "error")}}


def _prepare(chunk, key):
    rows = list(Image.objects.filter(id__in=chunk).order_by("id").values_list(
        "id", "file", "human_decision", "dup_group_id", "auto_reason"))
    existing = {
        row["image_id"]: row
        for row in FilterScore.objects.filter(scorer_key=key, image_id__in=chunk).values(
            "image_id", "scores", "indoor_margin", "moderate_margin", "object_count")
    }
    todo = [r[0] for r in rows if r[0] not in existing]
    return _Batch(by_id={r[0]: r for r in rows}, todo=todo, reuse=existing)


class _Writer:
    """Everything that happens on the calling thread once scores are known."""

    def __init__(self, key, labels, rule, uncalibrated, run_id, with_counts, log_csv, output_dir, tracker):
        self.key, self.labels, self.rule = key, labels, rule
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
                self.csv.writerow(csv_columns(labels))

    def close(self):
        if self.csv_file:
            self.csv_file.close()

    def reuse(self, batch):
        """Images already scored under this key: decide again (the rule may differ), no inference."""
        if not batch.reuse:
            return
        results = [(i, v["scores"], v["object_count"]) for i, v in batch.reuse.items() if i in batch.by_id]
        self._store(batch, results)

    def write(self, batch, ids_ok, sims, counts, failures):
        for image_id, error in failures:
            log.warning("image #%s could not be decoded: %s", image_id, error)
        if failures:
            self.tracker.count("error", len(failures))
        if sims is None:
            return
        results = []
        for n, image_id in enumerate(ids_ok):
            scores = {label: round(float(sims[n, j]), 6) for j, label in enumerate(self.labels)}
            results.append((image_id, scores, counts[n] if counts is not None else None))
        self._store(batch, results)

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
            _, name, human, dup_group, auto_reason = batch.by_id[image_id]
            row = {"id": image_id, "clip_indoor_margin": indoor, "clip_moderate_margin": moderate,
                   "uncalibrated": self.uncalibrated}
            if self.with_counts:
                row["object_count"] = count
            # A near-duplicate or a copy of a seed keeps its rejection: passing CLIP does not make a
            # copy worth keeping.
            copy = (dup_group is not None and dup_group != image_id) or (auto_reason or "").startswith(SEED_COPY_PREFIX)
            if not copy:
                row["auto_decision"] = Decision.KEEP if passed else Decision.REJECT
                row["auto_reason"] = reason[:500]
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
        decided = [r for r in image_rows if "auto_decision" in r]
        undecided = [r for r in image_rows if "auto_decision" not in r]
        update_rows(Image, decided, base + ["auto_decision", "auto_reason"], final_from_auto=True)
        update_rows(Image, undecided, base)
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
    from curation.models import Run

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
    """Images a run brought in (its Sources) or scored (its FilterScores)."""
    from django.apps import apps

    ids = set(FilterScore.objects.filter(run__in=runs).values_list("image_id", flat=True))
    if apps.is_installed("crawl"):
        # Sources live in crawl, which imports curation; query through the reverse relation name.
        ids |= set(Image.objects.filter(sources__run__in=runs).values_list("id", flat=True))
    return ids
