"""Launch forms for curation's stages. Each form's params() gives what its command's flags give."""
from django import forms

from curation import gallery, launch


class ClipForm(forms.Form):
    input = forms.CharField(initial="all", max_length=200,
                            help_text="a run id, an import label, or 'all' (images not yet scored)")
    indoor_margin = forms.FloatField(initial=0.0, help_text="keep when indoor - outdoor >= this")
    moderate_margin = forms.FloatField(required=False, help_text="also require moderate - max(tidy, messy) >= this")
    object_count_min = forms.IntegerField(required=False, min_value=0, help_text="runs Faster R-CNN")
    object_count_max = forms.IntegerField(required=False, min_value=0)
    detector_threshold = forms.FloatField(initial=0.5, min_value=0, max_value=1)
    limit = forms.IntegerField(required=False, min_value=1)
    label = forms.CharField(required=False, max_length=200)

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
    filter = forms.CharField(label="Gallery filter (querystring)", required=False, initial="final=keep",
                             max_length=2000)
    format = forms.ChoiceField(choices=[("zip", "zip"), ("folder", "folder on the server")], initial="zip")

    def clean_filter(self):
        value = self.cleaned_data["filter"].strip().lstrip("?")
        try:
            gallery.filter_images(value)
        except gallery.FilterError as exc:
            raise forms.ValidationError(str(exc)) from None
        return value

    def params(self):
        return launch.export_params(self.cleaned_data["filter"], self.cleaned_data["format"])
