from django.urls import path

from labels import views

app_name = "labels"
urlpatterns = [
    path("<int:pk>/add", views.add, name="add"),
    path("<int:pk>/remove", views.remove, name="remove"),
]
