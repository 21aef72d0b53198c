"""Launching crawl sources from the Django admin: keyword crawl, reverse-image expansion, URL list, folder.

The forms take the same parameters as the management commands and start the same Run through the
same code (crawl.launch), on the crawl queue. After a launch the browser goes to the run's live page
(counters polled with htmx, and a cancel button), which the runs app already provides.
"""
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.urls import path, reverse

from crawl import baidu_similar, launch
from crawl import queries as builtin_queries
from crawl.ingest import FILTER_KEYS
from curation.models import Image

MAX_SEED_BYTES = 20 * 1024 * 1024


class FilterFields(forms.Form):
    debug = forms.BooleanField(required=False, help_text="verbose log, relaxed size/aspect filters")
    timestamp_subdir = forms.BooleanField(required=False, label="Timestamp label",
                                          help_text="label the run with the time (and its --output subfolder)")
    label = forms.CharField(required=False, max_length=200)
    output = forms.CharField(required=False, max_length=1000, label="Also write files to (server folder)",
                             help_text="the old folder layout with sidecar JSON; leave empty for none")
    per_host = forms.IntegerField(required=False, min_value=1, max_value=64, help_text="downloads at once per host")
    min_width = forms.IntegerField(required=False, min_value=1)
    min_height = forms.IntegerField(required=False, min_value=1)
    max_aspect = forms.FloatField(required=False, min_value=1.0)

    def common(self):
        c = self.cleaned_data
        label = c["label"] or (launch.timestamp_label() if c["timestamp_subdir"] else "")
        return {"per_host": c["per_host"], "debug": c["debug"], "output": c["output"] or None, "label": label,
                **{k: c[k] for k in FILTER_KEYS}}


class KeywordCrawlForm(FilterFields):
    queries = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                              help_text="one query per line (like --query / --query-file)")
    default_queries = forms.BooleanField(required=False,
                                         help_text=f"add the {len(builtin_queries.DEFAULT_QUERIES)} built-in indoor queries")
    limit_per_query = forms.IntegerField(min_value=1, max_value=2000, initial=200)
    batch_size = forms.IntegerField(min_value=1, max_value=64, initial=20)
    field_order = ["queries", "default_queries", "limit_per_query", "batch_size"]  # then the shared ones

    def clean(self):
        data = super().clean()
        qs = builtin_queries.collect((data.get("queries") or "").splitlines(), None, data.get("default_queries"))
        if not qs:
            raise forms.ValidationError("Give at least one query, or tick the built-in queries.")
        data["query_list"] = qs
        return data

    def launch(self, user):
        c = self.cleaned_data
        params = launch.crawl_params(c["query_list"], limit_per_query=c["limit_per_query"],
                                     batch_size=c["batch_size"], **self.common())
        return launch.launch_crawl(params, user=user)


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if not data:
            return []
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleImageField, self).clean(f, initial) for f in files]


class SimilarForm(FilterFields):
    seeds = MultipleImageField(required=False, label="Upload seed images")
    seed_image_ids = forms.CharField(required=False, label="Or images in the collection (ids)",
                                     help_text="comma or space separated, like --seed-image-id")
    limit_per_seed = forms.IntegerField(min_value=1, max_value=2000, initial=150)
    batch_size = forms.IntegerField(min_value=1, max_value=64, initial=16)
    max_concurrent = forms.IntegerField(min_value=1, max_value=16, initial=3, help_text="seeds at once")
    dhash_threshold = forms.IntegerField(min_value=0, max_value=64, initial=18)
    dhash_min_distance = forms.IntegerField(min_value=0, max_value=64, initial=4)
    no_phash = forms.BooleanField(required=False, help_text="turn the dHash window off")
    no_dedup = forms.BooleanField(required=False, help_text="fetch URLs seen before again")
    field_order = ["seeds", "seed_image_ids", "limit_per_seed", "batch_size", "max_concurrent"]

    def clean_seed_image_ids(self):
        raw = self.cleaned_data["seed_image_ids"].replace(",", " ").split()
        try:
            ids = [int(x) for x in raw]
        except ValueError:
            raise forms.ValidationError("Image ids are numbers.") from None
        missing = sorted(set(ids) - set(Image.objects.filter(pk__in=ids).values_list("pk", flat=True)))
        if missing:
            raise forms.ValidationError(f"No image with id {', '.join(map(str, missing))}.")
        return ids

    def clean(self):
        data = super().clean()
        if not data.get("seeds") and not data.get("seed_image_ids"):
            raise forms.ValidationError("Upload seed images or give image ids.")
        for f in data.get("seeds") or []:
            if f.size > MAX_SEED_BYTES:
                raise forms.ValidationError(f"{f.name} is over {MAX_SEED_BYTES // 2**20} MB.")
        if (not data.get("no_phash") and data.get("dhash_min_distance") is not None
                and data.get("dhash_threshold") is not None and data["dhash_min_distance"] > data["dhash_threshold"]):
            raise forms.ValidationError("The minimum distance is above the threshold: nothing would be kept.")
        return data

    def launch(self, user):
        c = self.cleaned_data
        seeds = [baidu_similar.store_seed_upload(f.name, f.read()) for f in c["seeds"] or []]
        seeds += [{"image_id": i} for i in c["seed_image_ids"]]
        params = launch.similar_params(
            seeds, limit_per_seed=c["limit_per_seed"], batch_size=c["batch_size"],
            max_concurrent=c["max_concurrent"], dhash_threshold=c["dhash_threshold"],
            dhash_min_distance=c["dhash_min_distance"], use_dhash=not c["no_phash"], dedup=not c["no_dedup"],
            **self.common())
        return launch.launch_similar(params, user=user)


def _import_forms():
    """The import forms and launchers of the runs app (one definition of what an import takes)."""
    from curation import run_views

    return {
        "urls": ("URL-list import", run_views.UrlListForm, run_views._launch_import_urls),
        "folder": ("Folder import", run_views.FolderImportForm, run_views._launch_import_folder),
    }


SOURCES = {
    "keyword": ("Baidu keyword crawl", KeywordCrawlForm),
    "similar": ("Baidu reverse-image expansion", SimilarForm),
}


def launch_view(model_admin, request, source):
    if not request.user.is_staff or not request.user.has_perm("curation.add_run"):
        raise PermissionDenied("Launching runs needs the 'add run' permission.")
    imports = _import_forms()
    if source in SOURCES:
        title, form_class = SOURCES[source]
        launcher = None
    elif source in imports:
        title, form_class, launcher = imports[source]
    else:
        from django.http import Http404

        raise Http404(f"no crawl source {source!r}")
    if request.method == "POST":
        form = form_class(request.POST, request.FILES)
        if form.is_valid():
            run = launcher(form.cleaned_data, request.user) if launcher else form.launch(request.user)
            messages.success(request, f"{title}: run #{run.pk} {run.status}.")
            return redirect(reverse("curation:run_detail", args=[run.pk]))
    else:
        form = form_class()
    context = {
        **model_admin.admin_site.each_context(request), "title": f"Launch: {title}", "form": form,
        "source": source, "sources": [(k, v[0]) for k, v in SOURCES.items()] + [(k, v[0]) for k, v in imports.items()],
        "opts": model_admin.model._meta, "runs_url": reverse("admin:curation_run_changelist"),
    }
    return render(request, "admin/crawl/launch.html", context)


def launch_urls(model_admin):
    """URL patterns for the Source admin: /admin/crawl/source/launch/<source>/."""
    view = model_admin.admin_site.admin_view

    def wrapped(request, source):
        return launch_view(model_admin, request, source)

    return [path("launch/<slug:source>/", view(wrapped), name="crawl_launch")]


def hook(source_admin_class):
    """Add the launch pages to a ModelAdmin class (used by crawl/admin.py)."""
    original = source_admin_class.get_urls

    def get_urls(self):
        return launch_urls(self) + original(self)

    source_admin_class.get_urls = get_urls
    source_admin_class.change_list_template = "admin/crawl/source/change_list.html"
    return source_admin_class

