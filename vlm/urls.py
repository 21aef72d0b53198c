from django.urls import path

from vlm import views

app_name = "vlm"
urlpatterns = [
    path("compare/", views.compare_view, name="compare"),
    path("audit/", views.audit_view, name="audit"),
]
