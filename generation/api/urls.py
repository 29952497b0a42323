from django.urls import path

from generation.api import views

urlpatterns = [
    path("generations", views.GenerationsView.as_view(), name="generations"),
    path("generations/<str:generation_id>", views.GenerationDetailView.as_view(), name="generation-detail"),
    path(
        "generations/<str:generation_id>/cancel",
        views.GenerationCancelView.as_view(),
        name="generation-cancel",
    ),
    # Before social's posts/<post_id> (config/urls.py includes these first).
    path("posts/stitch", views.StitchView.as_view(), name="posts-stitch"),
    path("posts/<str:post_id>/provenance", views.PostProvenanceView.as_view(), name="post-provenance"),
    path("provenance/verify", views.ProvenanceVerifyView.as_view(), name="provenance-verify"),
]
