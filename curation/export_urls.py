from django.urls import path

from curation import export_views, snapshot_views

urlpatterns = [
    path("", export_views.export_new, name="export_new"),
    path("count/", export_views.export_count, name="export_count"),
    path("<int:run_id>/", export_views.export_detail, name="export_detail"),
    path("<int:run_id>/progress/", export_views.export_progress, name="export_progress"),
    path("<int:run_id>/download/", export_views.export_download, name="export_download"),
    path("<int:run_id>/files/<str:name>", export_views.export_file, name="export_file"),
    path("snapshots/", snapshot_views.snapshot_list, name="snapshot_list"),
    path("snapshots/diff/", snapshot_views.snapshot_diff, name="snapshot_diff"),
    path("snapshots/<int:pk>/", snapshot_views.snapshot_detail, name="snapshot_detail"),
    path("snapshots/<int:pk>/provenance/", snapshot_views.snapshot_provenance, name="snapshot_provenance"),
    path("snapshots/<int:pk>/provenance.csv", snapshot_views.snapshot_provenance_csv,
         name="snapshot_provenance_csv"),
]
