from django.urls import path

from remix.api import views

urlpatterns = [
    path("rights-holders", views.RightsHolderCreateView.as_view(), name="rights-holders"),
    path(
        "rights-holders/<str:holder_id>/verify",
        views.RightsHolderVerifyView.as_view(),
        name="rights-holder-verify",
    ),
    path(
        "rights-holders/<str:holder_id>/members/<str:username>",
        views.RightsHolderMemberView.as_view(),
        name="rights-holder-member",
    ),
    path(
        "rights-holders/<str:holder_id>/statement",
        views.RightsHolderStatementView.as_view(),
        name="rights-holder-statement",
    ),
    path("ip", views.IpListCreateView.as_view(), name="ip-list"),
    path("ip/<str:ip_id>", views.IpDetailView.as_view(), name="ip-detail"),
    path("ip/<str:ip_id>/usage", views.IpUsageView.as_view(), name="ip-usage"),
    path("revenue/events", views.RevenueEventView.as_view(), name="revenue-events"),
    path("revenue/events/batch", views.RevenueEventBatchView.as_view(), name="revenue-events-batch"),
    path("revenue/check", views.BooksCheckView.as_view(), name="revenue-check"),
    path("me/earnings", views.MyEarningsView.as_view(), name="my-earnings"),
    path("posts/<str:post_id>/remixes", views.PostRemixesView.as_view(), name="post-remixes"),
    path("posts/<str:post_id>/lineage", views.PostLineageView.as_view(), name="post-lineage"),
]
