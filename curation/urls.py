from django.urls import include, path

app_name = "curation"
urlpatterns = [
    path("runs/", include("curation.run_urls")),
    path("export/", include("curation.export_urls")),
]
