from django.urls import include, path

from curation import group_views, viewer_views, views

app_name = "curation"
urlpatterns = [
    path("", views.gallery_view, name="gallery"),
    path("count/", views.gallery_count, name="gallery_count"),
    path("viewer/", viewer_views.viewer, name="viewer"),
    path("viewer/items/", viewer_views.viewer_items, name="viewer_items"),
    path("images/<int:pk>/", views.image_detail, name="image_detail"),
    path("images/<int:pk>/thumb", views.image_file, {"kind": "thumb"}, name="image_thumb"),
    path("images/<int:pk>/full", views.image_file, {"kind": "full"}, name="image_full"),
    path("images/<int:pk>/decide/", views.decide, name="decide"),
    path("groups/<int:pk>/", group_views.group_detail, name="group"),
    path("groups/<int:pk>/keep-best", group_views.keep_best, name="group_keep_best"),
    path("groups/<int:pk>/representative", group_views.choose, name="group_choose"),
    path("review/", views.decide_selection, name="review_selection"),
    path("review/decisions/", viewer_views.decide_many, name="decide_many"),
    path("review/bulk/", views.review_bulk, name="review_bulk"),
    path("review/undo/", views.review_undo, name="review_undo"),
    path("runs/", include("curation.run_urls")),
    path("export/", include("curation.export_urls")),
]
