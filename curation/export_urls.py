from django.urls import path

from curation import export_views

urlpatterns = [
    path("", export_views.export_new, name="export_new"),
    path("<int:run_id>/", export_views.export_detail, name="export_detail"),
    path("<int:run_id>/progress/", export_views.export_progress, name="export_progress"),
    path("<int:run_id>/download/", export_views.export_download, name="export_download"),
]
