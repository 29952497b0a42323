from django.urls import path

from cameo.api import views

urlpatterns = [
    path("cameos", views.CameoListCreateView.as_view(), name="cameos"),
    path("cameos/usable", views.CameoUsableView.as_view(), name="cameos-usable"),
    path("cameos/trending", views.CameoTrendingView.as_view(), name="cameos-trending"),
    path("cameos/<str:cameo_id>", views.CameoDetailView.as_view(), name="cameo-detail"),
    path("cameos/<str:cameo_id>/grants/<str:username>", views.CameoGrantView.as_view(), name="cameo-grant"),
    path("cameos/<str:cameo_id>/requests", views.CameoRequestsView.as_view(), name="cameo-requests"),
    path("cameos/<str:cameo_id>/appearances", views.CameoAppearancesView.as_view(), name="cameo-appearances"),
    path("cameos/<str:cameo_id>/audit", views.CameoAuditView.as_view(), name="cameo-audit"),
    path("cameos/<str:cameo_id>/verified-as", views.CameoVerifiedAsView.as_view(), name="cameo-verified-as"),
    path(
        "protected-likenesses", views.ProtectedLikenessListCreateView.as_view(), name="protected-likenesses"
    ),
    path(
        "protected-likenesses/<str:likeness_id>",
        views.ProtectedLikenessDetailView.as_view(),
        name="protected-likeness-detail",
    ),
]
