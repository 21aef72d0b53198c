"""The VLM stage: ask a vision-language model about each image and keep its verdicts.

`judge_images` is the one function the command, the RQ job and the tests call. Threads only talk
to the model; this thread alone touches the database, writing verdicts in batches as upserts on
(image, prompt version, backend, model), so a retried job does no harm and a rerun asks again only
about images whose verdict failed or is missing.
"""
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from curation import decisions, runs
from curation.models import AutoStage, Image, Run
from vlm import backends as vlm_backends
from vlm import calls
from vlm.calls import Outcome
from vlm.models import PromptVersion, VlmVerdict
from vlm.normalise import final_decision, reply_json, split_tags
from vlm.prompts import active_version, render_user

log = logging.getLogger(__name__)

FLUSH_EVERY = 64  # verdicts per database write
FLUSH_SECONDS = 1.0
CHUNK = 1000
UPDATE_FIELDS = [
    "decision", "score", "reason", "tags", "raw_response", "latency_ms", "input_tokens", "output_tokens",
    "cost_usd", "error", "run", "updated_at",
]
INSERT_FIELDS = ["image", "prompt_version", "backend", "model", *UPDATE_FIELDS, "created_at"]


def judge_images(tracker, *, image_ids, prompt_version_id, backend, model, min_score=None, workers=None,
                 timeout=None, seed=0, base_url=None, outputs=None, batch_key=None):
    """Judge `image_ids` under one prompt version with one backend and model.

    `outputs` (optional): {"output", "keep_dir", "reject_dir"} and the whole selection, either inline
    ("ids", "names", "errors") or as a storage file name ("selection") when the work is split over
    jobs; the files are written once every batch of the run is done. Returns the counts.
    """
    min_score = settings.SCENEIMG_VLM_MIN_SCORE if min_score is None else min_score
    workers = max(1, workers or settings.SCENEIMG_VLM_WORKERS)
    timeout = timeout or settings.SCENEIMG_VLM_TIMEOUT
    ids = list(dict.fromkeys(int(i) for i in image_ids))
    tracker.add_total(len(ids))  # first, so that a batch failing below still has its images in the total
    version = PromptVersion.objects.get(pk=prompt_version_id)
    active = active_version()
    drives_decision = active is not None and active.pk == version.pk
    run_id = tracker.run.pk if tracker.run is not None else None

    writer = _Writer(tracker, version, backend, model, min_score, drives_decision, run_id)
    pending = _pending(ids, version, backend, model, tracker, writer)
    first = next(pending, None)
    if first is not None:
        spec = calls.Spec(backend, model, timeout, version.system_text, seed, settings.SCENEIMG_VLM_IMAGE_SIDE,
                          base_url)
        calls.judge_all(itertools.chain([first], pending), spec, workers=workers, writer=writer, tracker=tracker,
                        user_for=lambda image: render_user(version, width=image.width, height=image.height))
    writer.flush()
    if run_id is not None:
        _summarise_errors(run_id)
    if outputs and any(outputs.get(k) for k in ("output", "keep_dir", "reject_dir")):
        if batch_key is None or _last_batch(run_id, batch_key):
            selection = _load_selection(outputs)
            write_outputs(selection, version=version, backend=backend, model=model, min_score=min_score,
                          output=outputs.get("output"), keep_dir=outputs.get("keep_dir"),
                          reject_dir=outputs.get("reject_dir"))
    return dict(tracker.counts)


def _pending(ids, version, backend, model, tracker, writer):
    """The images of `ids` still to ask about, loaded a chunk at a time as the calls take them, so the
    first requests leave once the first chunk is read rather than the whole selection."""
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        done = set(VlmVerdict.objects.filter(
            image_id__in=chunk, prompt_version=version, backend=backend, model=model, error="",
        ).values_list("image_id", flat=True))
        if done:
            tracker.count("skipped", len(done))
            if writer.drives_decision:
                # Verdicts already made still decide, with this run's --min-score: the files and the
                # decisions agree, and re-running over a selection is how a newly activated prompt
                # version takes effect.
                writer.apply_existing([i for i in chunk if i in done])
        todo = [i for i in chunk if i not in done]
        images = Image.objects.only("id", "file", "thumbnail", "width", "height").in_bulk(todo)
        if len(images) < len(todo):  # deleted since they were selected: nothing to attach a verdict to
            tracker.count("error", len(todo) - len(images))
        yield from (images[i] for i in todo if i in images)


class _Writer:
    """Buffers outcomes and writes them: verdict upserts, image decisions, run counters."""

    def __init__(self, tracker, version, backend, model, min_score, drives_decision, run_id):
        self.tracker, self.version, self.backend, self.model = tracker, version, backend, model
        self.min_score, self.drives_decision, self.run_id = min_score, drives_decision, run_id
        self.buffer = []
        self.last = time.monotonic()

    def add(self, outcome):
        self.buffer.append(outcome)

    def maybe_flush(self, eager=False):
        if len(self.buffer) >= FLUSH_EVERY or (self.buffer and (eager or time.monotonic() - self.last > FLUSH_SECONDS)):
            self.flush()

    def flush(self):
        batch = list(self.buffer)
        if not batch:
            self.last = time.monotonic()
            return
        rows = []
        for o in batch:
            cost = vlm_backends.cost_usd(self.model, o.input_tokens, o.output_tokens, self.backend)
            rows.append(VlmVerdict(
                image_id=o.image_id, prompt_version=self.version, backend=self.backend, model=self.model,
                decision=o.decision, score=o.score, reason=o.reason, tags=o.tags, raw_response=o.raw,
                latency_ms=o.latency_ms, input_tokens=o.input_tokens, output_tokens=o.output_tokens,
                cost_usd=cost, error=o.error, run_id=self.run_id,
            ))
        judged = [o for o in batch if not o.error]
        with transaction.atomic():
            _upsert(rows)
            if self.drives_decision and judged:
                self._set_decisions(judged)
        # Only once written: a failed write leaves the batch for the next flush instead of losing it.
        del self.buffer[:len(batch)]
        self.last = time.monotonic()
        kept = sum(1 for o in judged if final_decision(o.decision, o.score, self.min_score) == "keep")
        unpriced = sum(1 for r in rows if r.cost_usd is None and r.input_tokens is not None)
        for key, n in (("kept", kept), ("rejected", len(judged) - kept), ("error", len(batch) - len(judged))):
            if n:
                self.tracker.count(key, n)
        if self.run_id is not None:
            totals = {
                "input_tokens": sum(r.input_tokens or 0 for r in rows),
                "output_tokens": sum(r.output_tokens or 0 for r in rows),
                "cost_usd": round(sum(r.cost_usd or 0 for r in rows), 8),
            }
            if unpriced:  # tokens without a price setting: the cost total leaves them out, and says so
                totals["unpriced_verdicts"] = unpriced
            runs.add_counters(self.run_id, totals)
        for k in ("input_tokens", "output_tokens"):
            self.tracker.counts[f"_{k}"] = self.tracker.counts.get(f"_{k}", 0) + sum(getattr(r, k) or 0 for r in rows)
        self.tracker.counts["_cost_usd"] = self.tracker.counts.get("_cost_usd", 0) + sum(r.cost_usd or 0 for r in rows)

    def apply_existing(self, image_ids):
        for i in range(0, len(image_ids), CHUNK):
            rows = VlmVerdict.objects.filter(
                image_id__in=image_ids[i:i + CHUNK], prompt_version=self.version, backend=self.backend,
                model=self.model, error="",
            ).values_list("image_id", "decision", "score", "reason")
            judged = [Outcome(image_id, decision=d, score=s, reason=r) for image_id, d, s, r in rows]
            if judged:
                self._set_decisions(judged)

    def _set_decisions(self, judged):
        """auto_decision follows these verdicts where the one rule lets it (a copy of a seed or a
        near-duplicate keeps its rejection); final_decision stays the human's where there is one.
        The vlm_score is written either way."""
        decisions.decide(AutoStage.VLM, [
            {"id": o.image_id, "decision": final_decision(o.decision, o.score, self.min_score),
             "reason": f"VLM {self.version.name} {self.model} score {o.score:.2f}: {o.reason}", "vlm_score": o.score}
            for o in judged
        ], extra_fields=["vlm_score"])


def _upsert(verdicts):
    """Insert the verdicts, or update the row an earlier run left for the same image, prompt version,
    backend and model: an INSERT ... ON CONFLICT per verdict, sent together (psycopg pipelines
    executemany). bulk_create sends each column as one array on Postgres, and escaping the quotes of
    every raw JSON reply inside an array literal took more of the interpreter lock than the rest of the
    write, while the 64 calls' threads waited for it."""
    q = connection.ops.quote_name
    now = timezone.now()
    fields = [VlmVerdict._meta.get_field(name) for name in INSERT_FIELDS]
    rows = []
    for verdict in verdicts:
        verdict.created_at = verdict.updated_at = now
        rows.append([f.get_db_prep_save(getattr(verdict, f.attname), connection) for f in fields])
    updates = ", ".join(f"{q(f.column)} = excluded.{q(f.column)}" for f in fields if f.name in UPDATE_FIELDS)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {q(VlmVerdict._meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "
            f"VALUES ({', '.join(['%s'] * len(fields))}) "
            "ON CONFLICT (image_id, prompt_version_id, backend, model) DO UPDATE SET " + updates, rows)


def _summarise_errors(run_id):
    """The run's error field lists its failed batches and images (the run itself still finishes as done)."""
    failed = VlmVerdict.objects.filter(run_id=run_id).exclude(error="")
    n = failed.count()
    batches = (Run.objects.filter(pk=run_id).values_list("counters", flat=True).first() or {}).get("_failed_batches", {})
    parts = [f"batch {key} failed ({why})" for key, why in sorted(batches.items())]
    if n:
        first = "; ".join(f"#{i}: {e[:120]}" for i, e in failed.order_by("image_id").values_list("image_id", "error")[:5])
        parts.append(f"{n} image(s) failed: {first}")
    if parts:
        Run.objects.filter(pk=run_id).update(error="; ".join(parts)[:5000])


def batch_failed(tracker, exc, *, image_ids, prompt_version_id, backend, model, min_score=None, outputs=None,
                 batch_key=None, **_):
    """A batch of a split run raised: its images that have no outcome yet count as errors, the run
    records the batch and why, and the run goes on with its other batches (and writes the output files
    when this was the last one)."""
    n = len(dict.fromkeys(int(i) for i in image_ids))
    missing = n - sum(tracker.counts.get(k, 0) for k in ("skipped", "kept", "rejected", "error"))
    if missing > 0:
        tracker.count("error", missing)
    tracker.flush()
    run_id = tracker.run.pk if tracker.run is not None else None
    if run_id is None:
        return dict(tracker.counts)
    why = f"{missing} image(s) without a verdict: {type(exc).__name__}: {vlm_backends.redact(str(exc))}"[:500]
    with transaction.atomic():
        run = Run.objects.select_for_update().only("counters").get(pk=run_id)
        run.counters.setdefault("_failed_batches", {})[batch_key or "all"] = why
        run.counters["failed_batches"] = len(run.counters["_failed_batches"])
        Run.objects.filter(pk=run_id).update(counters=run.counters)
    _summarise_errors(run_id)
    if outputs and any(outputs.get(k) for k in ("output", "keep_dir", "reject_dir")):
        if batch_key is None or _last_batch(run_id, batch_key):
            version = PromptVersion.objects.get(pk=prompt_version_id)
            min_score = settings.SCENEIMG_VLM_MIN_SCORE if min_score is None else min_score
            write_outputs(_load_selection(outputs), version=version, backend=backend, model=model,
                          min_score=min_score, output=outputs.get("output"), keep_dir=outputs.get("keep_dir"),
                          reject_dir=outputs.get("reject_dir"))
    return dict(tracker.counts)


def _last_batch(run_id, batch_key):
    """Record this batch as done; True when every batch of the run is, so one job writes the files."""
    if run_id is None:
        return True
    with transaction.atomic():
        run = Run.objects.select_for_update().only("counters", "jobs_total").get(pk=run_id)
        done = set(run.counters.get("_vlm_batches", []))
        done.add(batch_key)
        run.counters["_vlm_batches"] = sorted(done)
        Run.objects.filter(pk=run_id).update(counters=run.counters)
    return len(done) >= run.jobs_total


# --- output files ---

def selection_storage_name(selection_json):
    blob = json.dumps(selection_json, sort_keys=True).encode()
    return f"vlm/selections/{hashlib.sha256(blob).hexdigest()[:24]}.json"


def save_selection(selection_json, storage):
    """Freeze a selection in media storage (shared by every worker machine); returns its name."""
    from django.core.files.base import ContentFile

    name = selection_storage_name(selection_json)
    if not storage.exists(name):
        storage.save(name, ContentFile(json.dumps(selection_json).encode()))
    return name


def _load_selection(outputs):
    if outputs.get("selection"):
        from django.core.files.storage import default_storage

        with default_storage.open(outputs["selection"], "rb") as fh:
            return json.load(fh)
    return {"ids": outputs.get("ids", []), "names": outputs.get("names", {}), "errors": outputs.get("errors", []),
            "entries": outputs.get("entries", [])}


def errors_path(output):
    """`results/vlm.jsonl` -> `results/vlm.errors.json`, as the original script."""
    return Path(output).with_suffix(".errors.json")


def errors_document(errors):
    """The original's errors file, {"count", "errors": {identifier: message}}, with each error's
    details (image id, path, raw response) beside it."""
    by_id = {}
    for e in errors:
        key = str(e.get("id") or e.get("path") or e.get("image_id"))
        if key in by_id:  # two failed inputs with one identifier: both stay listed
            key = str(e.get("path") or e.get("image_id") or key)
        by_id[key] = e["error"]
    return {"count": len(errors), "errors": by_id, "details": errors}


def output_line(entry, v, *, version, backend, model, min_score, path):
    """One JSONL line: the original's fields first (id, image_path, the model's decision, score, reason,
    room_tags, object_tags, raw_response), then SceneImg's beside them."""
    plain, room, objects = split_tags(v.tags)
    processed = {"decision": v.decision, "score": v.score, "reason": v.reason, "room_tags": room,
                 "object_tags": objects}
    return {
        "id": entry["id"], "image_path": entry["image_path"] or path, **processed,
        "raw_response": {**reply_json(v.raw_response), **processed},
        "image_id": v.image_id, "sha256": v.image.sha256, "path": path,
        "final_decision": final_decision(v.decision, v.score, min_score), "tags": plain,
        "prompt": version.name, "prompt_hash": version.content_hash[:12], "backend": backend, "model": model,
        "latency_ms": v.latency_ms, "input_tokens": v.input_tokens, "output_tokens": v.output_tokens,
        "cost_usd": v.cost_usd,
    }


def write_outputs(selection, *, version, backend, model, min_score, output=None, keep_dir=None, reject_dir=None):
    """Write the JSONL of verdicts, `<output>.errors.json`, and copy files into keep/reject folders.

    One line per input (a manifest entry or a file; the selected image otherwise), sorted by the
    caller's identifier as the original sorted them. Everything comes from the database, so the
    files describe the whole selection, including verdicts from earlier runs that a rerun skipped:
    each input is in exactly one of the two files.
    """
    ids = [int(i) for i in selection["ids"]]
    names = {int(k): v for k, v in (selection.get("names") or {}).items()}
    entries = selection.get("entries") or [{"id": str(i), "image_id": i, "image_path": ""} for i in ids]
    verdicts = {}
    for i in range(0, len(ids), CHUNK):
        for v in (VlmVerdict.objects.filter(image_id__in=ids[i:i + CHUNK], prompt_version=version, backend=backend,
                                            model=model).select_related("image")):
            verdicts[v.image_id] = v
    unjudged = [i for i in ids if i not in verdicts]
    existing = set()
    for i in range(0, len(unjudged), CHUNK):
        existing.update(Image.objects.filter(pk__in=unjudged[i:i + CHUNK]).values_list("id", flat=True))
    lines, errors = [], list(selection.get("errors") or [])
    copies, copied = [], set()
    for entry in sorted(entries, key=lambda e: str(e["id"])) if selection.get("entries") else entries:
        image_id = int(entry["image_id"])
        path = Path(entry["image_path"]).name if entry["image_path"] else names.get(image_id, "")
        v = verdicts.get(image_id)
        if v is None:
            why = "not judged (run cancelled or failed)" if image_id in existing else "image deleted"
            errors.append({"id": entry["id"], "image_id": image_id, "path": path, "error": f"no verdict: {why}"})
            continue
        if v.error:
            errors.append({"id": entry["id"], "image_id": image_id, "path": path, "error": v.error,
                           "raw_response": v.raw_response[:2000]})
            continue
        path = path or v.image.file.name
        line = output_line(entry, v, version=version, backend=backend, model=model, min_score=min_score, path=path)
        lines.append(line)
        copy = (v.image, line["final_decision"], names.get(image_id) if not entry["image_path"] else path)
        if (image_id, copy[2]) not in copied:  # one file listed twice is copied once
            copied.add((image_id, copy[2]))
            copies.append(copy)
    if output:
        output = Path(output)
        _write_atomic(output, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        _write_atomic(errors_path(output), json.dumps(errors_document(errors), ensure_ascii=False, indent=2) + "\n")
    if keep_dir or reject_dir:
        _copy_files(copies, keep_dir, reject_dir)
    return {"verdicts": len(lines), "errors": len(errors)}


def _write_atomic(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _copy_files(copies, keep_dir, reject_dir):
    dirs = {"keep": Path(keep_dir) if keep_dir else None, "reject": Path(reject_dir) if reject_dir else None}
    for d in dirs.values():
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
    used = set()
    for image, decision, original in copies:
        ext = Path(image.file.name).suffix or ".jpg"
        name = Path(original).name if original else f"{image.sha256}{ext}"
        if name in used:  # two inputs with one base name: keep both
            name = f"{image.pk}-{name}"
        used.add(name)
        other = dirs["reject" if decision == "keep" else "keep"]
        if other is not None:
            (other / name).unlink(missing_ok=True)  # an earlier run with another threshold put it there
        target_dir = dirs[decision]
        if target_dir is None:
            continue
        target = target_dir / name
        if target.exists() and target.stat().st_size == image.byte_size:
            continue
        with image.file.storage.open(image.file.name, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
