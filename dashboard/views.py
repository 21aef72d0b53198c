"""The progress dashboard: reads the latest computed figures, asks for new ones when they are old."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from dashboard import charts, refresh


@login_required
@require_GET
def dashboard(request):
    snapshot = refresh.latest()
    refreshing = refresh.is_stale(snapshot) and refresh.request_refresh()
    context = {"snapshot": snapshot, "refreshing": refreshing}
    if snapshot is not None:
        data = snapshot.figures
        context.update(data=data, reviews_chart=charts.bars(data["reviews_per_day"]),
                       cost_chart=charts.bars(data["vlm_cost_per_day"]), chart=charts)
    template = "dashboard/_figures.html" if request.htmx else "dashboard/dashboard.html"
    return render(request, template, context)
