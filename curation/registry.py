"""What crawl and vlm add to curation's pages and runs, registered from their AppConfig.ready().

curation is the base app and imports neither crawl nor vlm. They call these functions from their
own `stages.py`, the way apps register models with django.contrib.admin:

- stages: a form and a launch function, shown on the runs page and in the admin;
- gallery filters: querystring names and the function that applies them to an Image queryset;
- filter panels: a template (and its context) for the gallery's filter sidebar;
- detail panels: a template (and its context) on the image detail page;
- export fields: what an app adds to each exported image's metadata;
- run images: how to find the images a run brought in or judged;
- provenance: an app's columns in a snapshot's provenance sheet, and what it adds to the snapshot's own;
- diff reasons: how to tell that an image changed between two snapshots because of an app's stage;
- gallery toolbar actions: a template shown in the gallery's toolbar (e.g. "save this view");
- review listeners: what an app does when people's decisions are written (e.g. a queue's lease ends).
"""
from dataclasses import dataclass
from typing import Callable


class LaunchError(Exception):
    """A launch refused for a reason the person can fix; its text is shown as it is."""


def can_launch(user):
    """Who may launch runs, from the runs page or the admin: staff with the 'add run' permission."""
    return user.is_authenticated and user.is_staff and user.has_perm("curation.add_run")


@dataclass(frozen=True)
class Stage:
    key: str
    title: str
    form: type
    launch: Callable  # (cleaned_data, user) -> Run; raises LaunchError
    order: int


@dataclass(frozen=True)
class GalleryFilter:
    fields: dict  # querystring name -> what it does
    apply: Callable  # (queryset, QueryDict) -> queryset; raises gallery.FilterError
    order: int


@dataclass(frozen=True)
class Panel:
    template: str
    context: Callable  # (request or image, ...) -> dict merged into the template's context
    order: int


@dataclass(frozen=True)
class ExportFields:
    prefetch: tuple  # prefetch_related lookups the fields need
    fields: Callable  # (image) -> dict merged into the image's metadata row
    csv: Callable  # (metadata row) -> dict of flat CSV columns
    csv_columns: tuple
    order: int


_stages: dict[str, Stage] = {}
_filters: list[GalleryFilter] = []
_filter_panels: list[Panel] = []
_detail_panels: list[Panel] = []
_run_panels: list[Panel] = []
_export_fields: list[ExportFields] = []
_run_images: list[Callable] = []
_followups: dict[str, list[Callable]] = {}
_pipeline_ends: list[Callable] = []
_provenance: list["Provenance"] = []
_diff_reasons: list["DiffReason"] = []
_reconcilers: dict[str, list[Callable]] = {}
_toolbar_actions: list[Panel] = []
_review_listeners: list[Callable] = []


def _replace(items, item, same):
    # ready() may run twice in tests that reload apps; a second registration replaces the first.
    items[:] = [i for i in items if not same(i)] + [item]
    items.sort(key=lambda i: i.order)


def register_stage(key, title, form, launch, *, order=100):
    _stages[key] = Stage(key, title, form, launch, order)


def stages():
    return sorted(_stages.values(), key=lambda s: s.order)


def stage(key):
    return _stages.get(key)


def register_filter(fields, apply, *, order=100):
    _replace(_filters, GalleryFilter(dict(fields), apply, order), lambda f: f.apply is apply)


def gallery_filters():
    return list(_filters)


def register_filter_panel(template, context, *, order=100):
    """context(params) -> dict: the choices the panel's template lists (params: the gallery's QueryDict)."""
    _replace(_filter_panels, Panel(template, context, order), lambda p: p.template == template)


def filter_panels():
    return list(_filter_panels)


def register_detail_panel(template, context, *, order=100):
    """context(image) -> dict for the panel's template on the image detail page."""
    _replace(_detail_panels, Panel(template, context, order), lambda p: p.template == template)


def detail_panels():
    return list(_detail_panels)


def register_run_panel(template, context, *, order=100):
    """context(run) -> dict for the panel's template on the run's page (e.g. the items that failed)."""
    _replace(_run_panels, Panel(template, context, order), lambda p: p.template == template)


def run_panels():
    return list(_run_panels)


def register_export_fields(fields, *, prefetch=(), csv=None, csv_columns=(), order=100):
    item = ExportFields(tuple(prefetch), fields, csv or (lambda row: {}), tuple(csv_columns), order)
    _replace(_export_fields, item, lambda e: e.fields is fields)


def export_fields():
    return list(_export_fields)


def register_followup(kinds, follow):
    """follow(run) -> Run: what to launch when a run of one of `kinds` launched with the pipeline
    option ends; raises LaunchError when it cannot start (said on the run as a notice)."""
    for kind in kinds:
        if follow not in _followups.setdefault(kind, []):
            _followups[kind].append(follow)


def followups(kind):
    return list(_followups.get(kind, []))


def register_pipeline_end(hook):
    """`hook(run)` is called when a pipeline run ends with nothing after it (its last stage, or a stage
    whose next one could not start): e.g. to start a collection's next round."""
    if hook not in _pipeline_ends:
        _pipeline_ends.append(hook)


def pipeline_ends():
    return list(_pipeline_ends)


def register_reconcile(kinds, reconcile):
    """reconcile(run): make a run's counters agree with the rows it wrote. The reaper calls it for a
    run whose worker died, whose counters may lag the rows committed before the kill."""
    for kind in kinds:
        if reconcile not in _reconcilers.setdefault(kind, []):
            _reconcilers[kind].append(reconcile)


def reconcilers(kind):
    return list(_reconcilers.get(kind, []))


def register_run_images(images_of_runs):
    """images_of_runs(run queryset) -> a queryset of Image ids that those runs brought in or judged."""
    if images_of_runs not in _run_images:
        _run_images.append(images_of_runs)


def run_image_querysets(runs):
    return [images_of_runs(runs) for images_of_runs in _run_images]


@dataclass(frozen=True)
class Provenance:
    columns: tuple  # the app's columns in the provenance sheet
    row: Callable  # (frozen export record) -> dict of those columns
    snapshot: Callable | None  # (Image queryset of a snapshot) -> dict merged into the snapshot's provenance
    order: int


def register_provenance(columns=(), row=None, *, snapshot=None, order=100):
    """Per image, `row` reads only the frozen record, so the sheet of an old snapshot never changes;
    per snapshot, `snapshot` runs once, when the snapshot is frozen."""
    item = Provenance(tuple(columns), row or (lambda record: {}), snapshot, order)
    _replace(_provenance, item, lambda p: p.row is item.row and p.snapshot is item.snapshot)


def provenance_fields():
    return list(_provenance)


@dataclass(frozen=True)
class DiffReason:
    label: str  # e.g. "new VLM verdict"
    differs: Callable  # (earlier frozen record, later frozen record) -> bool
    evidence: Callable  # (image ids, since, until) -> ids with this kind of change in that window
    order: int


def register_diff_reason(label, differs, evidence, *, order=100):
    """A reason an image entered, left or changed decision between two snapshots. When the image is in
    both, `differs` compares its two frozen records; when it is in only one, `evidence` looks for a
    change of this kind between the two snapshots' times."""
    _replace(_diff_reasons, DiffReason(label, differs, evidence, order), lambda r: r.label == label)


def diff_reasons():
    return list(_diff_reasons)


def register_toolbar_action(template, *, order=100):
    """A template included in the gallery's toolbar, with the gallery's context (`qs`: the current filter).
    It is inside the part htmx swaps, so it always sees the filter as it is now."""
    _replace(_toolbar_actions, Panel(template, lambda *args: {}, order), lambda p: p.template == template)


def toolbar_actions():
    return list(_toolbar_actions)


def register_review_listener(listener):
    """listener(user, {image_id: decision or None}) runs inside the transaction of every human decision, one
    image or many, so what it records commits or rolls back with the decisions themselves. It hears of
    decisions that change nothing (the image already had it, so no Review row is written) too."""
    if listener not in _review_listeners:
        _review_listeners.append(listener)


def review_listeners():
    return list(_review_listeners)


_image_facts: list[Callable] = []


def register_image_facts(facts):
    """facts(image ids) -> {image id: short text}: what an app knows about where each image came from,
    shown where images are compared side by side (a near-duplicate group)."""
    if facts not in _image_facts:
        _image_facts.append(facts)


def image_facts(ids):
    out = {}
    for facts in _image_facts:
        for pk, text in facts(ids).items():
            out.setdefault(pk, []).append(text)
    return out
