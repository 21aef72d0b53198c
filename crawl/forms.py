"""Launch forms for crawl's stages, shared by the runs page and the admin. Each form's params() gives
what its command's flags give, so the same work launched either way is the same Run."""
import hashlib
from pathlib import Path

from django import forms
from django.conf import settings

from crawl import baidu_similar, expand_kept, launch
from crawl import queries as builtin_queries
from crawl.ingest import FILTER_KEYS
from curation.models import Image

MAX_SEED_BYTES = 20 * 1024 * 1024


def import_roots():
    return [Path(r) for r in settings.SCENEIMG_IMPORT_ROOTS] or [Path(settings.VAR_DIR) / "import"]


def output_roots():
    return [Path(r) for r in settings.SCENEIMG_OUTPUT_ROOTS] or [Path(settings.VAR_DIR) / "crawl-output"]


def under_roots(text, roots, what):
    """`text` as an absolute path with every symlink followed, if that lies in one of `roots`; else a
    ValidationError that reads the same whether or not the path exists (the form is no oracle for
    which server paths exist)."""
    path = Path(text)
    if not path.is_absolute():
        raise forms.ValidationError("Give an absolute path on the server.")
    resolved = path.resolve()  # follows symlinks, also through the parts that exist of a path that does not
    for root in roots:
        root = root.resolve()
        if resolved == root or root in resolved.parents:
            return resolved
    raise forms.ValidationError(
        f"{path} is not a folder on the server under the {what} roots ({', '.join(map(str, roots))}); "
        f"the command line may name any folder.")


class IngestFilterFields(forms.Form):
    min_width = forms.IntegerField(required=False, min_value=0, help_text="0 switches the check off")
    min_height = forms.IntegerField(required=False, min_value=0, help_text="0 switches the check off")
    max_aspect = forms.FloatField(required=False, min_value=0, help_text="0 switches the check off")
    pipeline = forms.BooleanField(required=False, initial=lambda: settings.SCENEIMG_PIPELINE,
                                  label="Then score and judge",
                                  help_text="CLIP after this run, then the VLM for what CLIP kept, as child runs")

    def filters(self):
        """The ingest filters and the pipeline option, as the run's parameters take them."""
        return {**{k: self.cleaned_data[k] for k in FILTER_KEYS}, "pipeline": self.cleaned_data["pipeline"]}


class CrawlFields(IngestFilterFields):
    debug = forms.BooleanField(required=False, help_text="verbose log, relaxed size/aspect filters")
    timestamp_subdir = forms.BooleanField(required=False, label="Timestamp label",
                                          help_text="label the run with the time (and its --output subfolder)")
    label = forms.CharField(required=False, max_length=200)
    output = forms.CharField(required=False, max_length=1000, label="Also write files to (server folder)",
                             help_text="the old folder layout with sidecar JSON; leave empty for none")
    per_host = forms.IntegerField(required=False, min_value=1, max_value=64, help_text="downloads at once per host")
    until_kept = forms.IntegerField(required=False, min_value=1, max_value=100_000, label="Collect until kept",
                                    help_text="go on, round after round, until this many new images passed CLIP "
                                              "and the VLM (implies 'Then score and judge')")
    max_fetches = forms.IntegerField(required=False, min_value=1, max_value=10_000_000,
                                     label="At most this many results",
                                     help_text="with 'Collect until kept': the budget (default 50 per image wanted)")

    def clean_output(self):
        if not self.cleaned_data["output"]:
            return ""
        output = under_roots(self.cleaned_data["output"], output_roots(), "output")
        if output.exists() and not output.is_dir():
            raise forms.ValidationError(f"{output} is a file, not a folder.")
        return str(output)

    def common(self):
        c = self.cleaned_data
        label = c["label"] or (launch.timestamp_label() if c["timestamp_subdir"] else "")
        return {"per_host": c["per_host"], "debug": c["debug"], "output": c["output"] or None, "label": label,
                "until_kept": c["until_kept"], "max_fetches": c["max_fetches"], **self.filters()}


class KeywordCrawlForm(CrawlFields):
    queries = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                              help_text="one query per line (like --query / --query-file)")
    default_queries = forms.BooleanField(
        required=False, help_text=f"add the {len(builtin_queries.DEFAULT_QUERIES)} built-in indoor queries")
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

    def params(self):
        c = self.cleaned_data
        return launch.crawl_params(c["query_list"], limit_per_query=c["limit_per_query"],
                                   batch_size=c["batch_size"], **self.common())


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if not data:
            return []
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleImageField, self).clean(f, initial) for f in files]


class SimilarForm(CrawlFields):
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
        seeds = data.get("seeds") or []
        for f in seeds:
            if f.size > MAX_SEED_BYTES:
                raise forms.ValidationError(f"{f.name} is over {MAX_SEED_BYTES // 2**20} MB.")
        if len(seeds) > settings.SCENEIMG_SEED_MAX_FILES:
            raise forms.ValidationError(f"Upload at most {settings.SCENEIMG_SEED_MAX_FILES} seed images at once "
                                        f"({len(seeds)} given).")
        total = sum(f.size for f in seeds)
        if total > settings.SCENEIMG_SEED_MAX_TOTAL_BYTES:
            raise forms.ValidationError(f"The seed images come to {total / 2**20:.1f} MB in all; at most "
                                        f"{settings.SCENEIMG_SEED_MAX_TOTAL_BYTES / 2**20:.0f} MB at once.")
        if (not data.get("no_phash") and data.get("dhash_min_distance") is not None
                and data.get("dhash_threshold") is not None and data["dhash_min_distance"] > data["dhash_threshold"]):
            raise forms.ValidationError("The minimum distance is above the threshold: nothing would be kept.")
        return data

    def params(self):
        c = self.cleaned_data
        seeds = [baidu_similar.store_seed_upload(f.name, f.read()) for f in c["seeds"] or []]
        seeds += [{"image_id": i} for i in c["seed_image_ids"]]
        return launch.similar_params(
            seeds, limit_per_seed=c["limit_per_seed"], batch_size=c["batch_size"],
            max_concurrent=c["max_concurrent"], dhash_threshold=c["dhash_threshold"],
            dhash_min_distance=c["dhash_min_distance"], use_dhash=not c["no_phash"], dedup=not c["no_dedup"],
            **self.common())


class ExpandKeptForm(IngestFilterFields):
    kept = forms.ChoiceField(choices=list(expand_kept.KEPT_CHOICES.items()), initial="both",
                             label="Seed with images", widget=forms.RadioSelect)
    seeds = forms.IntegerField(min_value=1, max_value=1000, initial=20, label="How many seeds",
                               help_text="the newest kept images not used as a seed before")
    limit_per_seed = forms.IntegerField(min_value=1, max_value=2000, initial=150)
    until_kept = CrawlFields.base_fields["until_kept"]
    max_fetches = CrawlFields.base_fields["max_fetches"]
    label = forms.CharField(required=False, max_length=200)
    field_order = ["kept", "seeds", "limit_per_seed", "until_kept", "max_fetches", "label"]

    def params(self):
        c = self.cleaned_data
        return expand_kept.expand_kept_params(
            kept=c["kept"], seeds=c["seeds"], limit_per_seed=c["limit_per_seed"], until_kept=c["until_kept"],
            max_fetches=c["max_fetches"], label=c["label"], **self.filters())


class FolderImportForm(IngestFilterFields):
    path = forms.CharField(label="Folder on the server", max_length=1000)
    recursive = forms.BooleanField(required=False, label="Include subfolders")
    label = forms.CharField(required=False, max_length=200)
    field_order = ["path", "recursive", "label"]

    def clean_path(self):
        path = under_roots(self.cleaned_data["path"], import_roots(), "import")
        if not path.is_dir():
            raise forms.ValidationError(f"{self.cleaned_data['path']} is not a folder on the server.")
        return str(path)

    def params(self):
        c = self.cleaned_data
        return launch.import_folder_params(c["path"], recursive=c["recursive"], label=c["label"], **self.filters())


class UrlListForm(IngestFilterFields):
    urls = forms.CharField(label="URLs (one per line, or JSONL with url, page_url, title)",
                           widget=forms.Textarea(attrs={"rows": 5}), max_length=5_000_000)
    label = forms.CharField(required=False, max_length=200)
    workers = forms.IntegerField(min_value=1, max_value=64, initial=8)
    field_order = ["urls", "label", "workers"]

    def params(self):
        c = self.cleaned_data
        return launch.import_urls_params(save_url_list(c["urls"]), label=c["label"], workers=c["workers"],
                                         **self.filters())


def save_url_list(text):
    """Pasted URLs become a file the import job reads (content-addressed, so a retry reuses it)."""
    folder = Path(settings.VAR_DIR) / "url-lists"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()}.txt"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return str(path)
