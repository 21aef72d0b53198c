from django import forms
from django.contrib.auth import get_user_model

from team.models import Queue, SavedView


class QueueForm(forms.Form):
    name = forms.CharField(max_length=200)
    view = forms.ModelChoiceField(queryset=SavedView.objects.none(), label="Saved view")
    reviewers = forms.ModelMultipleChoiceField(queryset=get_user_model().objects.none(),
                                               widget=forms.CheckboxSelectMultiple)
    overlap_percent = forms.DecimalField(label="Overlap sample (%)", min_value=0, max_value=100, decimal_places=1,
                                         initial=0, required=False,
                                         help_text="this share of the view is reviewed by both overlap reviewers")
    overlap_a = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False,
                                       label="Overlap reviewer A")
    overlap_b = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False,
                                       label="Overlap reviewer B")

    def __init__(self, *args, views, **kwargs):
        super().__init__(*args, **kwargs)
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        self.fields["view"].queryset = views
        for name in ("reviewers", "overlap_a", "overlap_b"):
            self.fields[name].queryset = users

    def clean(self):
        data = super().clean()
        percent = data.get("overlap_percent") or 0
        a, b = data.get("overlap_a"), data.get("overlap_b")
        reviewers = set(data.get("reviewers") or ())
        if percent:
            if not (a and b) or a == b:
                raise forms.ValidationError("overlap: choose two different overlap reviewers")
            if not {a, b} <= reviewers:
                raise forms.ValidationError("overlap: both overlap reviewers must be among the reviewers")
        return data

    def save(self, user):
        data = self.cleaned_data
        permille = int(round(float(data.get("overlap_percent") or 0) * 10))
        queue = Queue.objects.create(
            name=data["name"], view=data["view"], overlap_permille=permille, created_by=user,
            overlap_a=data["overlap_a"] if permille else None, overlap_b=data["overlap_b"] if permille else None)
        queue.reviewers.set(data["reviewers"])
        return queue
