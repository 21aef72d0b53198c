"""Stored embeddings: kept by every CLIP pass, reused instead of decoding, indexed for search."""
import io

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from curation import embeddings, runs, vector_index
from curation.models import Embedding, FilterScore, Image, Run
from curation.scoring import DecisionRule, score_images
from tests.factories import image_row, stored_image

pytestmark = pytest.mark.django_db

KEY = "ViT-B-32:none"
ALL_PASS = DecisionRule(indoor_margin=-2.0)


@pytest.fixture(autouse=True)
def _vector_dir(settings, tmp_path):
    settings.SCENEIMG_VECTOR_DIR = str(tmp_path / "vectors")
    vector_index._loaded.clear()
    yield
    vector_index._loaded.clear()


def unit_vectors(n, dim=512, seed=0, clusters=8):
    """Clustered unit vectors, like image embeddings: a few themes with variation around each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def test_storage_round_trip_keeps_float16_and_the_first_vector():
    images = [image_row(n) for n in range(1, 4)]
    vecs = unit_vectors(3, seed=1)
    embeddings.store(KEY, [im.pk for im in images], vecs)
    loaded = embeddings.load_map(KEY, [im.pk for im in images] + [999])
    assert set(loaded) == {im.pk for im in images}
    for im, vec in zip(images, vecs, strict=True):
        assert loaded[im.pk].dtype == np.float16
        assert np.array_equal(loaded[im.pk], vec)
    # Storing again (another worker, another decode path) keeps what was stored first.
    embeddings.store(KEY, [images[0].pk], unit_vectors(1, seed=2))
    assert np.array_equal(embeddings.load_map(KEY, [images[0].pk])[images[0].pk], vecs[0])
    assert embeddings.load_map("other-model:none", [images[0].pk]) == {}
    assert embeddings.missing_ids(KEY, [images[0].pk, 999]) == [999]


def test_clip_pass_stores_normalised_embeddings_and_never_decodes_an_image_twice():
    images = [stored_image(seed, width=160, height=120) for seed in range(3)]
    ids = [im.pk for im in images]
    score_images(runs.Tracker(), ids, rule=ALL_PASS, device="cpu")
    stored = embeddings.load_map(KEY, ids)
    assert set(stored) == set(ids)
    for vec in stored.values():
        assert vec.shape == (512,) and np.linalg.norm(vec.astype(np.float32)) == pytest.approx(1.0, abs=1e-3)
    scores = dict(FilterScore.objects.values_list("image_id", "scores"))

    # Without its file, an image with an embedding is still scored: from the embedding, the same numbers.
    for im in images:
        default_storage.delete(im.file.name)
    FilterScore.objects.all().delete()
    Image.objects.update(clip_indoor_margin=None)
    tracker = runs.Tracker()
    score_images(tracker, ids, rule=ALL_PASS, device="cpu")
    assert tracker.counts == {"kept": 3}
    assert dict(FilterScore.objects.values_list("image_id", "scores")) == scores
    assert Embedding.objects.count() == 3


def test_embed_command_embeds_only_what_lacks_an_embedding(settings):
    images = [stored_image(seed, width=96, height=72) for seed in range(3)]
    embeddings.store(KEY, [images[0].pk], unit_vectors(1))
    before = bytes(Embedding.objects.get(image=images[0]).vector)
    call_command("embed", "--device", "cpu")
    assert set(Embedding.objects.values_list("image_id", flat=True)) == {im.pk for im in images}
    assert bytes(Embedding.objects.get(image=images[0]).vector) == before
    # The command updated the index in a recorded index run: every image is searchable.
    assert vector_index.get(KEY).state.count == 3
    index_run = Run.objects.get(kind=Run.Kind.INDEX)
    assert index_run.status == Run.Status.DONE and index_run.counters == {"indexed": 3}
    call_command("embed", "--device", "cpu")  # nothing left: no new rows
    assert Embedding.objects.count() == 3


def test_foreground_filter_clip_runs_an_index_run_afterwards_as_the_enqueued_path_does():
    images = [stored_image(seed, width=96, height=72) for seed in range(3)]
    call_command("filter_clip", "--indoor-margin", "-2", "--device", "cpu", "--no-index", stdout=io.StringIO())
    assert not Run.objects.filter(kind=Run.Kind.INDEX).exists()
    assert vector_index.get(KEY).state.count == 0
    more = stored_image(7, width=96, height=72)
    out = io.StringIO()
    call_command("filter_clip", "--indoor-margin", "-2", "--device", "cpu", stdout=out)
    clip_run = Run.objects.filter(kind=Run.Kind.CLIP).latest("id")
    index_run = Run.objects.get(kind=Run.Kind.INDEX)
    assert (index_run.status, index_run.label) == (Run.Status.DONE, f"index after run #{clip_run.pk}")
    assert index_run.counters == {"indexed": 4} and f"4 added (run #{index_run.pk})" in out.getvalue()
    vector_index._loaded.clear()  # as after a restart: the index is read from its files
    assert sorted(vector_index.get(KEY).ids.tolist()) == sorted(im.pk for im in [*images, more])


def exact_top(vecs, ids, query, k):
    sims = vecs.astype(np.float32) @ query
    order = np.lexsort((ids, -sims))[:k]
    return [int(ids[i]) for i in order]


def store_many(n, seed=0, clusters=8):
    Image.objects.bulk_create([
        Image(sha256=f"{i:064x}", file=f"images/{i}.jpg", thumbnail=f"thumbs/{i}.jpg", width=64, height=48,
              format="jpeg", byte_size=1, dhash=i) for i in range(1, n + 1)])
    ids = np.asarray(sorted(Image.objects.values_list("id", flat=True)), dtype=np.int64)
    vecs = unit_vectors(n, seed=seed, clusters=clusters)
    embeddings.store(KEY, ids, vecs)
    return ids, vecs


def test_exact_search_ranks_by_cosine():
    ids, vecs = store_many(300)
    vector_index.sync(KEY)
    query = vecs[7].astype(np.float32)
    hits = vector_index.search(query, 10, model_key=KEY)
    assert [i for i, _ in hits] == exact_top(vecs, ids, query, 10)
    assert hits[0] == (int(ids[7]), pytest.approx(float(query @ query), abs=1e-3))
    assert int(ids[7]) not in [i for i, _ in vector_index.search(query, 10, model_key=KEY, exclude=[int(ids[7])])]


def test_ivf_index_equals_exact_search_when_every_list_is_probed(settings):
    settings.SCENEIMG_INDEX_EXACT_BELOW = 100
    ids, vecs = store_many(3000, seed=3, clusters=60)
    vector_index.sync(KEY)
    index = vector_index.get(KEY)
    assert index.faiss is not None and index.faiss.ntotal == 3000
    queries = vecs[::150].astype(np.float32)
    settings.SCENEIMG_INDEX_NPROBE = index.faiss.nlist
    for q in queries:
        assert [i for i, _ in vector_index.search(q, 10, model_key=KEY)] == exact_top(vecs, ids, q, 10)
    # Probing an eighth of the lists is approximate, and still finds nearly all of the true top 10.
    settings.SCENEIMG_INDEX_NPROBE = index.faiss.nlist // 8
    found = [len(set(i for i, _ in vector_index.search(q, 10, model_key=KEY)) & set(exact_top(vecs, ids, q, 10)))
             for q in queries]
    assert sum(found) / (10 * len(queries)) >= 0.9


def test_index_is_extended_and_survives_a_restart(settings):
    settings.SCENEIMG_INDEX_EXACT_BELOW = 100
    ids, vecs = store_many(400, seed=5)
    first = vector_index.sync(KEY)
    assert first["indexed"] == 400
    more = [image_row(10_000 + n) for n in range(50)]
    extra = unit_vectors(50, seed=6)
    embeddings.store(KEY, [im.pk for im in more], extra)
    assert vector_index.is_stale(KEY)
    second = vector_index.sync(KEY)
    assert (second["indexed"], second["total"]) == (50, 450)
    assert not vector_index.is_stale(KEY)
    assert vector_index.sync(KEY)["indexed"] == 0  # nothing new: nothing changes
    query = extra[3].astype(np.float32)
    before = vector_index.search(query, 10, model_key=KEY)
    assert before[0][0] == more[3].pk

    vector_index._loaded.clear()  # a new process: only the files remain
    after = vector_index.search(query, 10, model_key=KEY)
    assert [i for i, _ in after] == [i for i, _ in before]
    all_ids = np.concatenate([i for i, _ in vector_index.iter_segments(KEY)])
    assert sorted(all_ids.tolist()) == sorted(ids.tolist() + [im.pk for im in more])


def test_rebuild_starts_from_the_stored_rows(settings):
    ids, vecs = store_many(50, seed=7)
    vector_index.sync(KEY)
    Image.objects.filter(pk=int(ids[0])).delete()  # its embedding goes with it
    stats = vector_index.sync(KEY, rebuild=True)
    assert stats["total"] == 49
    assert int(ids[0]) not in vector_index.all_ids(KEY).tolist()


def test_content_duplicates_pair_nearly_identical_embeddings(settings):
    settings.SCENEIMG_CONTENT_DUP_THRESHOLD = 0.95
    images = [image_row(n) for n in range(1, 5)]
    base = unit_vectors(3, seed=8).astype(np.float32)
    twin = base[0] + 0.05 * unit_vectors(1, seed=9)[0].astype(np.float32)
    vecs = np.stack([base[0], twin / np.linalg.norm(twin), base[1], base[2]])
    embeddings.store(KEY, [im.pk for im in images], vecs)
    stats = vector_index.sync(KEY)
    assert stats["duplicates"] == 1
    from curation.models import ContentDuplicate

    pairs = set(ContentDuplicate.objects.values_list("image_id", "other_id"))
    assert pairs == {(images[0].pk, images[1].pk), (images[1].pk, images[0].pk)}
