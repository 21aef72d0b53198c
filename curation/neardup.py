"""Near-duplicate groups over Image.dhash: images whose 64-bit dHashes differ by at most k bits.

The search is multi-index hashing (Norouzi et al.): cut the 64 bits into m chunks; if two hashes
differ in at most k bits, some chunk differs in at most floor(k/m) bits (pigeonhole). Each chunk
gets a counting-sort table (bucket starts for every chunk value), every hash probes its own chunk
value and the values within floor(k/m) flipped bits, and only those candidates are compared with
numpy's popcount. For 1M hashes and k=4 that is 3 chunks of 21-22 bits, 23 probes each, and ~35
candidates per hash instead of a million. Small sets and small query batches use blocked brute
force (xor + bitwise_count), which is exact too.

Groups are connected components (single linkage). The representative is the largest image
(width x height), then the earliest; every other member gets auto_decision reject "near-duplicate
of #<representative>" unless a person kept it.
"""
import logging
import math
import threading
from itertools import combinations

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from curation import decisions
from curation.bulk_update import update_rows
from curation.models import AutoStage, Decision, Image

log = logging.getLogger(__name__)

REASON_PREFIX = "near-duplicate of #"
LOCK_ID = 0x5CE1D0  # Postgres advisory lock: one group writer at a time
_MAX_TABLE_BITS = 24
_EXPAND_BLOCK = 4_000_000  # candidate pairs materialised at once


# --- the search (pure numpy, no database) -------------------------------------------------------

def as_unsigned(hashes):
    """Signed bigint dHashes (as stored) -> uint64, bit pattern unchanged."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.int64)).view(np.uint64)


def _popcount_le(a, b, k):
    return np.bitwise_count(np.bitwise_xor(a, b)) <= k


def brute_force_pairs(hashes, k, block=2048):
    """All (i, j), i < j, within k bits: blocked all-pairs in numpy. O(n^2) but vectorised."""
    h = as_unsigned(hashes) if np.asarray(hashes).dtype != np.uint64 else np.asarray(hashes)
    n = len(h)
    out_i, out_j = [], []
    for start in range(0, n, block):
        rows = h[start:start + block]
        # Compare each row only with the columns after it.
        cols = h[start:]
        close = _popcount_le(rows[:, None], cols[None, :], k)
        ii, jj = np.nonzero(close)
        jj = jj + start
        ii = ii + start
        keep = jj > ii
        out_i.append(ii[keep])
        out_j.append(jj[keep])
    return _concat(out_i), _concat(out_j)


def query_pairs(queries, hashes, k, block=None):
    """For each query hash, the indexes of `hashes` within k bits: (query index, hash index) arrays."""
    q = np.asarray(queries, dtype=np.uint64)
    h = np.asarray(hashes, dtype=np.uint64)
    # Keep the xor temporary near cache size: a 256 x 1M block would be 2 GB of memory traffic.
    block = block or max(1, 2_000_000 // max(len(h), 1))
    out_q, out_h = [], []
    for start in range(0, len(q), block):
        close = _popcount_le(q[start:start + block, None], h[None, :], k)
        qi, hi = np.nonzero(close)
        out_q.append(qi + start)
        out_h.append(hi)
    return _concat(out_q), _concat(out_h)


def _concat(parts):
    return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)


def _chunks(m, bits=64):
    """m contiguous (offset, width) chunks covering `bits`, widths differing by at most one."""
    base, extra = divmod(bits, m)
    out, offset = [], 0
    for c in range(m):
        width = base + (1 if c < extra else 0)
        out.append((offset, width))
        offset += width
    return out


def _flip_masks(width, radius):
    masks = [0]
    for r in range(1, radius + 1):
        for bits in combinations(range(width), r):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.int64)


def plan(n, k):
    """Pick the chunk count for multi-index hashing by estimated work, or brute force when cheaper.

    Work for m chunks: every hash probes sum_{i<=k//m} C(width, i) buckets per chunk and compares
    with their contents (n / 2^width on average). Brute force compares n^2/2 pairs, but each
    comparison is ~10x cheaper than a probe, hence the weighting.
    """
    best = ("brute", None, n * n / 2 / 10)
    for m in range(1, max(k + 1, 3) + 1):  # more chunks than k+1 only to keep tables small
        chunks = _chunks(m)
        if max(w for _, w in chunks) > _MAX_TABLE_BITS:
            continue
        radius = k // m
        probes = sum(sum(math.comb(w, i) for i in range(radius + 1)) for _, w in chunks)
        bucket = max(n / 2 ** min(w for _, w in chunks), 1.0 / 64)
        cost = probes * n * (1 + bucket)
        if cost < best[2]:
            best = ("mih", m, cost)
    return best


def mih_pairs(hashes, k, m=None):
    """All (i, j), i < j, within k bits, by multi-index hashing over m chunks."""
    h = np.asarray(hashes, dtype=np.uint64)
    n = len(h)
    if m is None:
        _, m, _ = plan(n, k)
        m = m or k + 1
    radius = k // m
    out_i, out_j = [], []
    for offset, width in _chunks(m):
        vals = ((h >> np.uint64(offset)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(vals, kind="stable")
        starts = np.zeros((1 << width) + 1, dtype=np.int64)
        np.cumsum(np.bincount(vals, minlength=1 << width), out=starts[1:])
        for mask in _flip_masks(width, radius):
            probe = vals ^ mask
            lo = starts[probe]
            cnt = starts[probe + 1] - lo
            qi = np.flatnonzero(cnt)
            if len(qi) == 0:
                continue
            # Expand the (query, bucket) ranges in blocks that fit in memory, even on skewed data.
            csum = np.cumsum(cnt[qi])
            first = 0
            while first < len(qi):
                base = csum[first - 1] if first else 0
                last = int(np.searchsorted(csum, base + _EXPAND_BLOCK, side="right"))
                last = max(last, first + 1)
                q = qi[first:last]
                c = cnt[q]
                total = int(c.sum())
                qrep = np.repeat(q, c)
                within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
                j = order[np.repeat(lo[q], c) + within]
                keep = j > qrep
                qrep, j = qrep[keep], j[keep]
                close = _popcount_le(h[qrep], h[j], k)
                out_i.append(qrep[close])
                out_j.append(j[close])
                first = last
    i, j = _concat(out_i), _concat(out_j)
    if len(i):
        # A pair close in several chunks was found several times.
        code = np.unique(i * n + j)
        i, j = code // n, code % n
    return i, j


def near_pairs(hashes, k):
    """Edges (i, j), i < j, within k bits, spanning exactly the components of the all-pairs graph.

    Identical hashes are collapsed first (a thousand copies of one blank image cost nothing): each
    copy is linked to the first row with its hash, and distinct hashes are compared exactly, by
    multi-index hashing or brute force, whichever `plan` says is cheaper. Without identical hashes
    the result is exactly all pairs within k bits.
    """
    h = as_unsigned(hashes) if np.asarray(hashes).dtype != np.uint64 else np.asarray(hashes)
    if len(h) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    uniq, inverse = np.unique(h, return_inverse=True)
    method, m, _ = plan(len(uniq), k)
    if method == "brute":
        ui, uj = brute_force_pairs(uniq, k)
    else:
        ui, uj = mih_pairs(uniq, k, m)
    # Expand unique-hash pairs back to rows: first row of each hash stands for its copies.
    order = np.argsort(inverse, kind="stable")
    first_row = order[np.searchsorted(inverse[order], np.arange(len(uniq)))]
    pi, pj = [first_row[ui]], [first_row[uj]]
    copies = np.flatnonzero(first_row[inverse] != np.arange(len(h)))
    pi.append(first_row[inverse[copies]])
    pj.append(copies)
    i, j = np.concatenate(pi), np.concatenate(pj)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    return lo.astype(np.int64), hi.astype(np.int64)


def components(n, i, j):
    """Connected-component label per node for the undirected edges (i, j)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if n == 0:
        return np.empty(0, np.int64)
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def group_labels(hashes, k):
    """Component label per hash (singletons have their own label)."""
    i, j = near_pairs(hashes, k)
    return components(len(hashes), i, j)


def representatives(labels, area, created, ids, pinned=None):
    """For each row, the id of its group's representative (the one a person chose, else largest area,
    then earliest, then lowest id), or -1 when it is alone."""
    n = len(labels)
    rep = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return rep
    chosen = np.zeros(n, dtype=np.int64) if pinned is None else pinned.astype(np.int64)
    order = np.lexsort((ids, created, -area, -chosen, labels))
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sizes = np.diff(np.r_[starts, n])
    head = order[starts]
    group_rep = np.repeat(ids[head], sizes)
    group_size = np.repeat(sizes, sizes)
    rep[order] = np.where(group_size > 1, group_rep, -1)
    return rep


# --- the database side --------------------------------------------------------------------------

def _threshold(k):
    return settings.SCENEIMG_NEARDUP_THRESHOLD if k is None else int(k)


def _load(qs):
    """ids, dhash (uint64), area, created (µs), current dup_group (-1 when none) and whether a person
    chose the image as its group's representative, as arrays."""
    rows = qs.order_by("id").values_list("id", "dhash", "width", "height", "created_at", "dup_group_id",
                                         "dup_pinned")
    ids, hashes, area, created, group, pinned = [], [], [], [], [], []
    for pk, dhash, w, h, ts, g, pin in rows.iterator(chunk_size=20000):
        ids.append(pk)
        hashes.append(dhash)
        area.append(w * h)
        created.append(int(ts.timestamp() * 1_000_000))
        group.append(-1 if g is None else g)
        pinned.append(pin)
    return (np.array(ids, dtype=np.int64), as_unsigned(np.array(hashes, dtype=np.int64)),
            np.array(area, dtype=np.int64), np.array(created, dtype=np.int64),
            np.array(group, dtype=np.int64), np.array(pinned, dtype=bool))


class _GroupLock:
    """One group writer at a time (two ingest workers could otherwise split one group)."""

    def __enter__(self):
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
        return self

    def __exit__(self, *exc):
        return self.atomic.__exit__(*exc)


def _apply(ids, reps, current_groups, released_candidates=None):
    """Write dup_group and near-duplicate decisions for rows whose representative is `reps`.

    `released_candidates`: ids that may carry an old near-duplicate rejection and are no longer
    members (their decision goes back to their latest CLIP result, or to none).
    """
    stats = {"groups": int(np.sum(reps == ids)), "duplicates": int(np.sum((reps != -1) & (reps != ids)))}
    changed = reps != current_groups
    update_rows(Image, [
        {"id": int(i), "dup_group": None if r == -1 else int(r)} for i, r in zip(ids[changed], reps[changed], strict=True)
    ], ["dup_group"])

    members = (reps != -1) & (reps != ids)
    member_rep = dict(zip(ids[members].tolist(), reps[members].tolist(), strict=True))
    rejections = []
    member_ids = list(member_rep)
    for start in range(0, len(member_ids), 10000):
        chunk = member_ids[start:start + 10000]
        for pk, stage, reason, human in Image.objects.filter(id__in=chunk).values_list(
                "id", "auto_stage", "auto_reason", "human_decision"):
            want = f"{REASON_PREFIX}{member_rep[pk]}"
            if human == Decision.KEEP or (stage == AutoStage.NEAR_DUPLICATE and reason == want):
                continue
            rejections.append({"id": pk, "decision": Decision.REJECT, "reason": want})
    released = Image.objects.filter(auto_stage=AutoStage.NEAR_DUPLICATE)
    if released_candidates is not None:
        released = released.filter(id__in=list(released_candidates))
    released_ids = [pk for pk in released.values_list("id", flat=True) if pk not in member_rep]
    decisions.decide(AutoStage.NEAR_DUPLICATE, rejections)
    decisions.release(AutoStage.NEAR_DUPLICATE, decisions.back_to_clip(released_ids, " (no longer a duplicate)"))
    stats["rejected"] = len(rejections)
    stats["released"] = len(released_ids)
    return stats


def find_duplicates(tracker=None, threshold=None):
    """Recompute every near-duplicate group in the collection from scratch."""
    k = _threshold(threshold)
    with _GroupLock():
        ids, hashes, area, created, current, pinned = _load(Image.objects.all())
        if tracker is not None:
            tracker.set_total(len(ids))
        labels = group_labels(hashes, k)
        reps = representatives(labels, area, created, ids, pinned)
        stats = _apply(ids, reps, current)
    _INDEX.reset()
    if tracker is not None:
        tracker.count("processed", len(ids))
        for key in ("groups", "duplicates"):
            tracker.count(key, stats[key])
        tracker.flush()
    return {"images": len(ids), "threshold": k, **stats}


class _HashIndex:
    """This process's copy of (id, dhash), topped up with rows newer than the last one it saw, so an
    ingest worker does not reload the whole collection for every new image. Ids of deleted images
    may linger; they match no row when the groups are read back.

    Postgres hands out ids at INSERT but rows appear at COMMIT, so a lower id can become visible
    after a higher one was read: each top-up re-reads the last LAG ids and skips those it has."""

    LAG = 1000

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.ids = np.empty(0, np.int64)
        self.hashes = np.empty(0, np.uint64)
        self.max_id = 0

    def neighbours(self, queries, k):
        """Ids of indexed images within k bits of any of `queries` (uint64)."""
        with self.lock:
            floor = max(0, self.max_id - self.LAG)
            rows = Image.objects.filter(id__gt=floor).order_by("id").values_list("id", "dhash")
            new = list(rows.iterator(chunk_size=50000))
            if new:
                ids = np.fromiter((r[0] for r in new), dtype=np.int64, count=len(new))
                hashes = as_unsigned(np.fromiter((r[1] for r in new), dtype=np.int64, count=len(new)))
                unseen = ~np.isin(ids, self.ids[self.ids > floor])
                self.ids = np.concatenate([self.ids, ids[unseen]])
                self.hashes = np.concatenate([self.hashes, hashes[unseen]])
                self.max_id = max(self.max_id, int(ids[-1]))
            ids, hashes = self.ids, self.hashes
        _, hit = query_pairs(queries, hashes, k)
        return set(ids[hit].tolist())


_INDEX = _HashIndex()


def assign_near_duplicates(image_ids, threshold=None):
    """Bring the groups up to date after `image_ids` arrived (the ingest path calls this).

    Finds every stored image within k bits of the new ones (a brute-force scan of this process's
    hash index: about 1 ms per new image per million stored). Most new images have none, and
    nothing is written. Otherwise the whole groups those neighbours belong to are taken in, the
    groups of that set are recomputed and the changes written, under a lock.
    """
    k = _threshold(threshold)
    image_ids = sorted(set(int(i) for i in image_ids))
    empty = {"images": 0, "groups": 0, "duplicates": 0, "rejected": 0, "released": 0}
    new = dict(Image.objects.filter(id__in=image_ids).values_list("id", "dhash")) if image_ids else {}
    if not new:
        return empty
    near = _INDEX.neighbours(as_unsigned(np.array(list(new.values()), dtype=np.int64)), k) | set(new)
    if near == set(new) and len(new) == 1:
        return {**empty, "images": 1}  # alone: nothing to group
    with _GroupLock():
        # Take in the whole groups the neighbours belong to, so a merged group keeps every member.
        group_ids = set(Image.objects.filter(id__in=near, dup_group__isnull=False).values_list(
            "dup_group_id", flat=True))
        qs = Image.objects.filter(id__in=near) | Image.objects.filter(dup_group_id__in=group_ids)
        ids, hashes, area, created, current, pinned = _load(qs.distinct())
        labels = group_labels(hashes, k)
        reps = representatives(labels, area, created, ids, pinned)
        stats = _apply(ids, reps, current, released_candidates=ids.tolist())
    return {**stats, "images": len(new)}


class NotInGroup(ValueError):
    """The image has no near-duplicates, so it cannot represent a group."""


def choose_representative(image_id):
    """A person makes `image_id` its group's representative: the other members point at it and carry
    the near-duplicate rejection, it is released from its own, and regrouping keeps the choice."""
    with _GroupLock():
        group = Image.objects.filter(pk=image_id).values_list("dup_group_id", flat=True).first()
        if group is None:
            raise NotInGroup(f"image #{image_id} has no near-duplicates")
        members = Image.objects.filter(dup_group_id=group)
        members.exclude(pk=image_id).update(dup_pinned=False)
        Image.objects.filter(pk=image_id).update(dup_pinned=True)
        ids, _, _, _, current, _ = _load(members)
        return _apply(ids, np.full(len(ids), image_id, dtype=np.int64), current, released_candidates=ids.tolist())
