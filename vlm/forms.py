"""The VLM launch form of the runs page and the admin; params() gives what filter_vlm's flags give."""
from django import forms
from django.conf import settings

from vlm.backends import BACKENDS
from vlm.inputs import DECISION_CHOICES
from vlm.launch import vlm_options


class VlmForm(forms.Form):
    backend = forms.ChoiceField(choices=[(b, b) for b in BACKENDS])
    model = forms.CharField(required=False, max_length=100, help_text="default per backend from settings")
    prompt = forms.CharField(required=False, max_length=100, help_text="prompt version name; default the active one")
    run = forms.IntegerField(required=False, min_value=1, help_text="images sighted, scored or judged in this run")
    decision = forms.ChoiceField(required=False, choices=[("", "—")] + [(d, d) for d in DECISION_CHOICES])
    passed_clip = forms.BooleanField(required=False, label="Only images that passed a CLIP filter")
    judged = forms.BooleanField(required=False, label="Only images this prompt and model already judged",
                                help_text="re-decides them with the min-score below, without asking the model again")
    limit = forms.IntegerField(required=False, min_value=1)
    min_score = forms.FloatField(min_value=0, max_value=1)
    workers = forms.IntegerField(required=False, min_value=1, max_value=64, help_text="default SCENEIMG_VLM_WORKERS")
    timeout = forms.FloatField(required=False, min_value=1, help_text="seconds; default SCENEIMG_VLM_TIMEOUT")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {
            "backend": settings.SCENEIMG_VLM_BACKEND, "min_score": settings.SCENEIMG_VLM_MIN_SCORE,
            "workers": settings.SCENEIMG_VLM_WORKERS, "timeout": settings.SCENEIMG_VLM_TIMEOUT,
        })
        super().__init__(*args, **kwargs)

    def clean(self):
        data = super().clean()
        if not (data.get("run") or data.get("decision") or data.get("passed_clip") or data.get("judged")):
            raise forms.ValidationError("Say what to judge: a run, a final decision, only images that passed CLIP, "
                                        "or only images already judged.")
        return data

    def params(self):
        return vlm_options(**self.cleaned_data)
