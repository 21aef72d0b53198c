"""Launch forms for curation's stages. Each form's params() gives what its command's flags give."""
from django import forms

from curation import gallery, launch


class ClipForm(forms.Form):
    input = forms.CharField(initial="all", max_length=200,
                            help_text="a run id, an import label, or 'all' (images not yet scored)")
    indoor_margin = forms.FloatField(initial=0.02, help_text="keep when indoor - outdoor >= this")
    moderate_margin = forms.FloatField(required=False, help_text="also require moderate - max(tidy, messy) >= this")
    object_count_min = forms.IntegerField(required=False, min_value=0, help_text="runs Faster R-CNN")
    object_count_max = forms.IntegerField(required=False, min_value=0)
    detector_threshold = forms.FloatField(initial=0.5, min_value=0, max_value=1)
    limit = forms.IntegerField(required=False, min_value=1,
                               help_text="score at most this many images (the command's --limit counts kept ones)")
    label = forms.CharField(required=False, max_length=200)

    def clean(self):
        data = super().clean()
        low, high = data.get("object_count_min"), data.get("object_count_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError(f"The object count minimum ({low}) is above the maximum ({high}).")
        return data

    def params(self):
        c = self.cleaned_data
        return launch.clip_params(c["input"], limit=c["limit"], label=c["label"],
                                  **{k: c[k] for k in launch.RULE_KEYS})


class DedupForm(forms.Form):
    threshold = forms.IntegerField(min_value=0, max_value=32, required=False,
                                   help_text="max dHash distance (bits); default SCENEIMG_NEARDUP_THRESHOLD")
    label = forms.CharField(required=False, max_length=200)

    def params(self):
        return launch.dedup_params(self.cleaned_data["threshold"], label=self.cleaned_data["label"])


class ExportLaunchForm(forms.Form):
    FORMAT_CHOICES = [
        ("zip", "imagefolder zip"),
        ("webdataset", "webdataset tar shards"),
        ("parquet", "parquet of the metadata"),
        ("folder", "imagefolder folder on the server"),
    ]

    filter = forms.CharField(label="Gallery filter (querystring)", required=False, initial="final=keep",
                             max_length=2000)
    name = forms.CharField(label="Snapshot name", required=False, max_length=200,
                           help_text="optional; the export first freezes the matching images as a snapshot")
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="zip")
    shard_size = forms.IntegerField(label="Shard size", required=False, min_value=1, initial=1000,
                                    help_text="images per tar shard (webdataset only)")
    # Set when writing an existing snapshot again; the filter is then ignored.
    snapshot = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean_filter(self):
        value = self.cleaned_data["filter"].strip().lstrip("?")
        try:
            gallery.filter_images(value)
        except gallery.FilterError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def params(self):
        c = self.cleaned_data
        return launch.export_params(c["filter"], c["format"], name=c["name"], shard_size=c["shard_size"],
                                    snapshot=c["snapshot"])


class EmbedForm(forms.Form):
    input = forms.CharField(initial="all", max_length=200,
                            help_text="a run id, an import label, or 'all' (images with no embedding)")
    limit = forms.IntegerField(required=False, min_value=1)
    label = forms.CharField(required=False, max_length=200)

    def params(self):
        c = self.cleaned_data
        return launch.embed_params(c["input"], limit=c["limit"], label=c["label"])


class IndexForm(forms.Form):
    rebuild = forms.BooleanField(required=False, help_text="start from nothing (after changing the duplicate "
                                                           "threshold, or if the index files were lost)")
    label = forms.CharField(required=False, max_length=200)

    def params(self):
        return launch.index_params(rebuild=self.cleaned_data["rebuild"], label=self.cleaned_data["label"])


def _prompt_set_choices():
    from curation.clip import PROMPTS_DIR

    return [(p.stem, p.stem) for p in sorted(PROMPTS_DIR.glob("*.json"))]


class RescoreForm(forms.Form):
    prompts = forms.ChoiceField(choices=_prompt_set_choices, help_text="the CLIP prompt set to score with")
    indoor_margin = forms.FloatField(initial=0.0, help_text="keep when indoor - outdoor >= this")
    moderate_margin = forms.FloatField(required=False, help_text="also require moderate - max(tidy, messy) >= this")
    label = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from django.conf import settings

        self.fields["prompts"].initial = settings.SCENEIMG_CLIP_PROMPTS

    def params(self):
        c = self.cleaned_data
        return launch.rescore_params(c["prompts"], label=c["label"], indoor_margin=c["indoor_margin"],
                                     moderate_margin=c["moderate_margin"])


class TrainForm(forms.Form):
    label = forms.CharField(required=False, max_length=200)

    def params(self):
        return launch.train_params(label=self.cleaned_data["label"])
