"""Near-duplicate groups: the fast search equals brute force; groups, representatives and decisions."""
import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction

from curation import neardup
from curation.models import FilterScore, Image
from tests.factories import image_row, stored_image


def planted_hashes(n, k, seed, pairs):
    """n random 64-bit hashes; `pairs` of them copied from another with 0..k+2 bits flipped."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    for src, dst in zip(rng.integers(0, n, pairs), rng.integers(0, n, pairs), strict=True):
        v = h[src]
        for bit in rng.choice(64, rng.integers(0, k + 3), replace=False):
            v ^= np.uint64(1) << np.uint64(int(bit))
        h[dst] = v
    return h


def reference_pairs(h, k):
    """Plain Python all-pairs: the definition."""
    vals = [int(x) for x in h]
    return {(i, j) for i in range(len(vals)) for j in range(i + 1, len(vals)) if bin(vals[i] ^ vals[j]).count("1") <= k}


def same_partition(a, b):
    return len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 10])
def test_search_finds_exactly_the_pairs_brute_force_finds(k):
    h = np.unique(planted_hashes(700, k, seed=k, pairs=150))  # distinct hashes: pairs must match exactly
    want = reference_pairs(h, k)
    assert len(want) > 20  # the planted pairs are there to be found
    i, j = neardup.near_pairs(h, k)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == want
    for m in range(1, k + 2):
        if max(w for _, w in neardup._chunks(m)) <= 24:
            i, j = neardup.mih_pairs(h, k, m)
            assert set(zip(i.tolist(), j.tolist(), strict=True)) == want, f"m={m}"


def test_exact_copies_only_at_threshold_zero():
    h = planted_hashes(2000, 0, seed=3, pairs=300)
    want = reference_pairs(h, 0)
    assert len(want) > 50
    i, j = neardup.near_pairs(h, 0)
    ref_i, ref_j = (np.array(x) for x in zip(*sorted(want), strict=True))
    assert same_partition(neardup.components(len(h), i, j), neardup.components(len(h), ref_i, ref_j))


def test_large_set_takes_the_multi_index_path_and_matches_blocked_brute_force():
    h = planted_hashes(30_000, 4, seed=7, pairs=3000)
    assert neardup.plan(len(np.unique(h)), 4)[0] == "mih"
    bi, bj = neardup.brute_force_pairs(h, 4)
    labels = neardup.group_labels(h, 4)
    assert same_partition(labels, neardup.components(len(h), bi, bj))
    assert len(np.unique(labels)) < len(h) - 1500  # the planted pairs were grouped


def test_identical_hashes_are_grouped_with_their_neighbours():
    base = np.uint64(0x0F0F_0F0F_0F0F_0F0F)
    h = np.array([base, base, base ^ np.uint64(0b111), np.uint64(0xFFFF_0000_FFFF_0000), base], dtype=np.uint64)
    labels = neardup.group_labels(h, 3)
    assert labels[0] == labels[1] == labels[2] == labels[4] != labels[3]


def test_representative_is_largest_then_earliest():
    labels = np.array([0, 0, 0, 1, 1, 2])
    area = np.array([100, 400, 400, 50, 50, 10])
    created = np.array([5, 9, 7, 1, 1, 0])
    ids = np.array([10, 11, 12, 13, 14, 15])
    assert neardup.representatives(labels, area, created, ids).tolist() == [12, 12, 12, 13, 13, -1]


@pytest.mark.django_db
def test_find_duplicates_groups_the_collection_and_rejects_all_but_the_representative():
    base = 0x1234_5678_9ABC_DEF0
    small = stored_image(1, width=200, height=150, dhash=base)
    big = stored_image(2, width=400, height=300, dhash=base ^ 0b1011)  # 3 bits away
    kept_by_person = stored_image(3, width=200, height=150, dhash=base ^ (0b111 << 40), human_decision="keep")
    # 2 bits from `big`, 5 from `small`:
    chained = stored_image(4, width=100, height=100, dhash=base ^ 0b1011 ^ (0b11 << 20))
    alone = stored_image(5, width=320, height=240, dhash=~base)
    result = neardup.find_duplicates(threshold=4)
    assert result["groups"] == 1 and result["duplicates"] == 3
    by_id = Image.objects.in_bulk()
    assert {by_id[im.pk].dup_group_id for im in (small, big, kept_by_person, chained)} == {big.pk}
    assert by_id[alone.pk].dup_group_id is None
    assert by_id[big.pk].auto_decision is None
    for im in (small, chained):
        assert by_id[im.pk].auto_decision == "reject" and by_id[im.pk].final_decision == "reject"
        assert by_id[im.pk].auto_reason == f"near-duplicate of #{big.pk}"
    assert by_id[kept_by_person.pk].auto_decision is None
    assert by_id[kept_by_person.pk].final_decision == "keep"

    # Recomputing changes nothing; a tighter threshold releases the chain's far end.
    before = list(Image.objects.order_by("id").values())
    neardup.find_duplicates(threshold=4)
    assert list(Image.objects.order_by("id").values()) == before
    FilterScore.objects.create(image=small, scorer_key="clip:x", scores={}, indoor_margin=0.1, passed=True)
    neardup.find_duplicates(threshold=2)
    by_id = Image.objects.in_bulk()
    assert by_id[chained.pk].dup_group_id == big.pk
    assert by_id[small.pk].dup_group_id is None
    assert by_id[small.pk].auto_decision == "keep"  # back to its CLIP verdict
    assert "no longer a duplicate" in by_id[small.pk].auto_reason
    assert by_id[kept_by_person.pk].dup_group_id is None


@pytest.mark.django_db
def test_images_arriving_one_by_one_join_and_merge_groups():
    neardup._INDEX.reset()
    base = 0x0FED_CBA9_8765_4321
    first = stored_image(1, width=300, height=200, dhash=base)
    assert neardup.assign_near_duplicates([first.pk], threshold=4)["duplicates"] == 0
    far = stored_image(2, width=300, height=200, dhash=base ^ 0xFF)  # 8 bits away: its own image
    neardup.assign_near_duplicates([far.pk], threshold=4)
    assert Image.objects.filter(dup_group__isnull=False).count() == 0

    copy = stored_image(3, width=300, height=200, dhash=base ^ 0b1)  # same size, later: a duplicate of `first`
    neardup.assign_near_duplicates([copy.pk], threshold=4)
    copy.refresh_from_db()
    assert copy.dup_group_id == first.pk and copy.auto_reason == f"near-duplicate of #{first.pk}"

    # 4 bits from both: merges; biggest, so representative.
    bridge = stored_image(4, width=800, height=600, dhash=base ^ 0x0F)
    neardup.assign_near_duplicates([bridge.pk], threshold=4)
    by_id = Image.objects.in_bulk()
    assert {by_id[i].dup_group_id for i in (first.pk, far.pk, copy.pk, bridge.pk)} == {bridge.pk}
    assert by_id[first.pk].auto_reason == f"near-duplicate of #{bridge.pk}"
    assert by_id[copy.pk].auto_reason == f"near-duplicate of #{bridge.pk}"
    assert by_id[bridge.pk].auto_decision is None

    # The incremental result equals a full recompute.
    before = list(Image.objects.order_by("id").values("id", "dup_group_id", "auto_decision", "auto_reason"))
    neardup.find_duplicates(threshold=4)
    assert list(Image.objects.order_by("id").values("id", "dup_group_id", "auto_decision", "auto_reason")) == before


@pytest.mark.django_db
def test_find_duplicates_command(capsys):
    a = stored_image(1, width=320, height=240, dhash=42)
    stored_image(2, width=320, height=240, dhash=42 ^ 0b11)
    call_command("find_duplicates", "--threshold", "2")
    assert "groups 1" in capsys.readouterr().out
    assert Image.objects.filter(dup_group=a).count() == 2


@pytest.mark.django_db
def test_ingest_groups_a_recompressed_copy_as_it_arrives(django_capture_on_commit_callbacks):
    from crawl.ingest import Sighting, ingest_bytes
    from tests.images import encode, photo_like

    neardup._INDEX.reset()
    picture = photo_like(640, 480, seed=5)
    with django_capture_on_commit_callbacks(execute=True):  # grouping follows the rows' commit
        first = ingest_bytes(encode(picture, "JPEG", quality=95), Sighting(provider="folder", path="a.jpg")).image
        ingest_bytes(encode(photo_like(640, 480, seed=6), "JPEG", quality=95),
                     Sighting(provider="folder", path="b.jpg"))
        smaller = ingest_bytes(encode(picture.resize((480, 360)), "JPEG", quality=60),
                               Sighting(provider="folder", path="c.jpg")).image
    assert smaller.pk != first.pk
    smaller.refresh_from_db()
    assert smaller.dup_group_id == first.pk
    assert smaller.auto_decision == "reject" and smaller.auto_reason == f"near-duplicate of #{first.pk}"
    assert Image.objects.filter(dup_group__isnull=False).count() == 2


@pytest.mark.django_db
def test_an_id_committed_after_a_higher_one_is_still_indexed_once():
    # Ids are handed out at INSERT and seen at COMMIT: #b can appear after #c was indexed.
    index = neardup._HashIndex()
    a = stored_image(1, width=320, height=240, dhash=0x1111)
    b = stored_image(2, width=320, height=240, dhash=0x7777_0000)
    c = stored_image(3, width=320, height=240, dhash=0x2222)
    late = {f.attname: getattr(b, f.attname) for f in Image._meta.concrete_fields}
    b.delete()  # not visible yet
    assert index.neighbours(neardup.as_unsigned(np.array([0x1111])), 0) == {a.pk}
    assert index.max_id == c.pk
    Image.objects.create(**late)  # its transaction commits now, with its lower id
    assert index.neighbours(neardup.as_unsigned(np.array([0x7777_0000])), 0) == {late["id"]}
    index.neighbours(neardup.as_unsigned(np.array([0x1111])), 0)
    assert sorted(index.ids.tolist()) == [a.pk, late["id"], c.pk] and len(index.hashes) == 3


def chained_hashes(rng, k, chains, length, loners):
    """Random 64-bit hashes: `chains` walks of `length` steps, each step 1..k bits from the one before
    (so a chain is one group while its ends are far apart), plus `loners` random hashes."""
    out = []
    for _ in range(chains):
        h = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
        for _ in range(length):
            out.append(h)
            for bit in rng.choice(64, int(rng.integers(1, k + 1)), replace=False):
                h ^= 1 << int(bit)
    out += [int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2)) for _ in range(loners)]
    return [h - (1 << 64) if h >= 1 << 63 else h for h in out]  # stored signed


def group_state():
    return list(Image.objects.order_by("id").values_list("id", "dup_group_id", "auto_decision", "auto_reason",
                                                         "final_decision"))


def recomputed_state(k):
    """The state a full recompute would leave, without leaving it."""
    with transaction.atomic():
        neardup.find_duplicates(threshold=k)
        state = group_state()
        transaction.set_rollback(True)
    return state


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(4))
def test_incremental_grouping_equals_a_full_recompute_after_every_arrival(seed):
    """Property: whatever the arrival order, assigning each new image (or small batch) incrementally
    leaves the same groups, representatives and decisions as recomputing the whole collection."""
    k = 4
    rng = np.random.default_rng(seed)
    hashes = chained_hashes(rng, k, chains=4, length=6, loners=6)
    order = rng.permutation(len(hashes))
    neardup._INDEX.reset()
    n, grouped = 0, 0
    while n < len(order):
        batch = order[n:n + int(rng.integers(1, 3))]
        n += len(batch)
        # Random sizes, so a late arrival is sometimes the largest and takes over a group.
        made = [image_row(1000 * seed + int(i), dhash=hashes[i], width=int(rng.integers(100, 900)),
                          height=300, human_decision="keep" if rng.random() < 0.1 else None)
                for i in batch]
        neardup.assign_near_duplicates([img.pk for img in made], threshold=k)
        state = group_state()
        assert state == recomputed_state(k), f"after {n} of {len(order)} arrivals"
        grouped = max(grouped, sum(1 for row in state if row[1] is not None))
    assert grouped >= 12  # the chains were grouped, so the comparison had groups to get wrong
