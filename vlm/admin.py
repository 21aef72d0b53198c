from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from curation.admin import HistoryAdmin
from vlm.models import PromptVersion, VlmVerdict


class NewVersionForm(forms.Form):
    name = forms.CharField(max_length=100)
    system_text = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "cols": 100}))
    user_template = forms.CharField(widget=forms.Textarea(attrs={"rows": 6, "cols": 100}))


@admin.register(PromptVersion)
class PromptVersionAdmin(HistoryAdmin):
    """Prompt versions are never edited: "new version from this one" writes a new row."""

    list_display = ("name", "content_hash", "source_file", "created_at")
    change_form_template = "admin/vlm/promptversion/change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.new_version_view)
        return [path("<int:pk>/new-version/", view, name="vlm_promptversion_new_version")] + super().get_urls()

    def new_version_view(self, request, pk):
        if not self.has_view_permission(request) or not request.user.has_perm("vlm.add_promptversion"):
            messages.error(request, "Writing a prompt version needs the 'add prompt version' permission.")
            return redirect(reverse("admin:vlm_promptversion_change", args=[pk]))
        base = get_object_or_404(PromptVersion, pk=pk)
        form = NewVersionForm(request.POST or None, initial={
            "name": base.name, "system_text": base.system_text, "user_template": base.user_template})
        if request.method == "POST" and form.is_valid():
            version, created = PromptVersion.objects.new_version(**form.cleaned_data, source_file=f"admin, from #{pk}")
            if created:
                messages.success(request, f"Saved as a new version: {version}.")
            else:
                messages.info(request, f"That text is already version {version}; nothing new was written.")
            return redirect(reverse("admin:vlm_promptversion_change", args=[version.pk]))
        context = {**self.admin_site.each_context(request), "title": f"New version from {base}", "form": form,
                   "opts": self.model._meta, "original": base}
        return render(request, "admin/vlm/promptversion/new_version.html", context)


@admin.register(VlmVerdict)
class VlmVerdictAdmin(HistoryAdmin):
    list_display = ("image", "prompt_version", "backend", "model", "decision", "score", "reason", "error")
    list_filter = ("prompt_version", "backend", "model", "decision")
    search_fields = ("reason",)
