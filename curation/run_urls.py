from django.urls import path

from curation import run_views

urlpatterns = [
    path("", run_views.run_list, name="run_list"),
    path("<int:run_id>/", run_views.run_detail, name="run_detail"),
    path("<int:run_id>/row/", run_views.run_row, name="run_row"),
    path("<int:run_id>/cancel/", run_views.run_cancel, name="run_cancel"),
    path("launch/<slug:key>/", run_views.run_launch, name="run_launch"),
]
