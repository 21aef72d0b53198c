from django.urls import path

from team import queue_views, views

app_name = "team"
urlpatterns = [
    path("views/", views.view_list, name="view_list"),
    path("views/<int:pk>/", views.view_detail, name="view_detail"),
    path("views/<int:pk>/delete/", views.view_delete, name="view_delete"),
    path("queues/", queue_views.my_queues, name="my_queues"),
    path("queues/new/", queue_views.queue_new, name="queue_new"),
    path("queues/<int:pk>/", queue_views.queue_detail, name="queue_detail"),
    path("queues/<int:pk>/claim/", queue_views.queue_claim, name="queue_claim"),
    path("queues/<int:pk>/release/", queue_views.queue_release, name="queue_release"),
    path("queues/<int:pk>/disagreements/", queue_views.disagreements, name="disagreements"),
    path("queues/<int:pk>/settle/<int:image_id>/", queue_views.settle, name="settle"),
]
