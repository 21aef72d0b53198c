"""Snapshot pages: the list, one snapshot with its provenance and exports, its provenance sheet, and
the difference between two snapshots."""
import csv
import json

from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from curation import export, provenance, snapshots
from curation.forms import ExportLaunchForm
from curation.models import Run, SnapshotImage
from curation.snapshot_diff import GALLERY_LINK_MAX, diff

PAGE_SIZE = 50
PROVENANCE_PAGE_SIZE = 100
CHOICES = 200  # snapshots offered in the compare pickers


def _int(request, name):
    value = request.GET.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Http404(f"{name}: not a number") from None


def _snapshot(pk):
    return get_object_or_404(snapshots.complete(), pk=pk)


@login_required
def snapshot_list(request):
    qs = snapshots.complete()
    before = _int(request, "before")
    if before is not None:
        qs = qs.filter(pk__lt=before)
    rows = list(qs[:PAGE_SIZE + 1])
    return render(request, "curation/snapshots.html", {
        "snapshots": rows[:PAGE_SIZE],
        "older": rows[PAGE_SIZE - 1].pk if len(rows) > PAGE_SIZE else None,
        "choices": snapshots.complete()[:CHOICES],
    })


@login_required
def snapshot_detail(request, pk):
    snapshot = _snapshot(pk)
    exports = Run.objects.filter(kind=Run.Kind.EXPORT).filter(
        Q(pk=snapshot.run_id) | Q(params__snapshot=snapshot.pk)).select_related("created_by").order_by("-id")
    form = ExportLaunchForm(initial={"snapshot": snapshot.pk, "format": "zip", "shard_size": export.DEFAULT_SHARD_SIZE})
    return render(request, "curation/snapshot_detail.html", {
        "snapshot": snapshot,
        "sheet": snapshot.provenance,
        "sheet_json": json.dumps(snapshot.provenance, ensure_ascii=False, indent=2, sort_keys=True),
        "exports": exports[:50],
        "form": form,
        "others": snapshots.complete().exclude(pk=snapshot.pk)[:CHOICES],
    })


@login_required
def snapshot_provenance(request, pk):
    """The provenance sheet, a page of images at a time (after=<image id>)."""
    snapshot = _snapshot(pk)
    after = _int(request, "after") or 0
    page = list(SnapshotImage.objects.filter(snapshot=snapshot, image_id__gt=after).order_by("image_id")
                .only("image_id", "record")[:PROVENANCE_PAGE_SIZE + 1])
    columns = provenance.columns()
    rows = [(r.image_id, [(c, provenance.row(json.loads(r.record)).get(c)) for c in columns])
            for r in page[:PROVENANCE_PAGE_SIZE]]
    return render(request, "curation/snapshot_provenance.html", {
        "snapshot": snapshot, "columns": columns, "rows": rows,
        "next_after": page[PROVENANCE_PAGE_SIZE - 1].image_id if len(page) > PROVENANCE_PAGE_SIZE else None,
    })


class _Echo:
    def write(self, value):
        return value


@login_required
def snapshot_provenance_csv(request, pk):
    snapshot = _snapshot(pk)
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in export.provenance_csv_rows(snapshot)),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="snapshot-{snapshot.pk}-provenance.csv"'
    return response


@login_required
def snapshot_diff(request):
    a_id, b_id = _int(request, "a"), _int(request, "b")
    context = {"choices": snapshots.complete()[:CHOICES], "a_id": a_id, "b_id": b_id,
               "link_max": GALLERY_LINK_MAX}
    if a_id is not None and b_id is not None:
        result = diff(_snapshot(a_id), _snapshot(b_id))
        context.update({"diff": result, "summary": result.summary(),
                        "transitions": sorted(result.transitions.items())})
    return render(request, "curation/snapshot_diff.html", context)
