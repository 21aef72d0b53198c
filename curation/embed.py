"""The embed stage: CLIP image embeddings for images that lack them, nothing scored or decided.

`manage.py embed`, its RQ job and its web form call `embed_images`. It runs the CLIP stage's own
pipeline (decode threads, one inference thread, database writes on the calling thread), so it is as
fast as `filter_clip` on the CPU and on CUDA; a later `filter_clip` or `rescore_clip` then scores
these images without decoding them.
"""
from curation import embeddings
from curation.clip import get_clip_scorer, resolve_device
from curation.models import Embedding, Image, Run
from curation.scoring import DecisionRule, InputError, _Batch, _Pipeline, _run_image_ids, default_batch_size

KIND = Run.Kind.EMBED  # the Run kind of this stage


class _EmbeddingWriter:
    def __init__(self, model_key, tracker):
        self.model_key, self.tracker = model_key, tracker

    def reuse(self, batch):
        pass  # images that already have an embedding never reach the pipeline

    def write(self, batch, ids_ok, embedded, counts, failures):
        if failures:
            self.tracker.count("error", len(failures))
        if embedded is not None:
            embeddings.store(self.model_key, ids_ok, embedded)
            self.tracker.count("embedded", len(ids_ok))


def embed_images(tracker, image_ids, *, device=None, batch_size=None, set_total=True):
    """Store an embedding under the configured model for each of `image_ids` that has none."""
    device = resolve_device(device)
    scorer = get_clip_scorer(device)
    key = scorer.embedding_key
    ids = sorted(set(int(i) for i in image_ids))
    if set_total:
        tracker.set_total(len(ids))
    batch_size = batch_size or default_batch_size(device)

    def prepare(chunk):
        rows = list(Image.objects.filter(id__in=chunk).order_by("id").values_list("id", "file"))
        todo = embeddings.missing_ids(key, [r[0] for r in rows])
        if len(todo) < len(rows):
            tracker.count("skipped", len(rows) - len(todo))
        return _Batch(by_id={r[0]: r for r in rows}, todo=todo, reuse={})

    pipeline = _Pipeline(scorer, None, DecisionRule(), device)  # no detector: the rule is never consulted
    try:
        pipeline.run([ids[i:i + batch_size] for i in range(0, len(ids), batch_size)], prepare,
                     _EmbeddingWriter(key, tracker), tracker)
    finally:
        pipeline.close()
    tracker.flush()
    return {"model_key": key, **{k: tracker.counts.get(k, 0) for k in ("embedded", "skipped", "error")}}


def select_ids(input_spec="all", model_key=None, limit=None):
    """--input for embed: a run id, an import label, or "all" (every image with no embedding)."""
    model_key = model_key or embeddings.current_key()
    spec = str(input_spec).strip()
    lacking = Image.objects.exclude(id__in=Embedding.objects.filter(model_key=model_key).values("image_id"))
    if spec.lower() == "all":
        qs = lacking
    elif spec.lstrip("#").isdigit():
        run_id = int(spec.lstrip("#"))
        if not Run.objects.filter(pk=run_id).exists():
            raise InputError(f"--input {spec}: there is no run #{run_id}")
        qs = lacking.filter(id__in=_run_image_ids(Run.objects.filter(pk=run_id)))
    else:
        runs = Run.objects.filter(label=spec)
        if not runs.exists():
            raise InputError(f"--input {spec!r}: no run has this label (give a run id, a label, or 'all')")
        qs = lacking.filter(id__in=_run_image_ids(runs))
    qs = qs.order_by("id").values_list("id", flat=True)
    return list(qs[:limit] if limit else qs)
