from django.urls import path

from social.api import exports, views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="register"),
    path("auth/token", views.TokenObtainView.as_view(), name="token"),
    path("auth/token/refresh", views.TokenRefreshView.as_view(), name="token-refresh"),
    path("auth/logout", views.LogoutView.as_view(), name="logout"),
    path("me", views.MeView.as_view(), name="me"),
    path("me/feed", views.FeedPreferencesView.as_view(), name="me-feed"),
    path("me/guardian-code", views.GuardianCodeView.as_view(), name="me-guardian-code"),
    path("me/guardian", views.MyGuardianView.as_view(), name="me-guardian"),
    path("me/export", exports.ExportRequestView.as_view(), name="me-export"),
    path("me/exports", exports.ExportListView.as_view(), name="me-exports"),
    path("me/exports/<str:export_id>", exports.ExportDetailView.as_view(), name="me-export-detail"),
    path("users/<str:username>", views.UserDetailView.as_view(), name="user-detail"),
    path("users/<str:username>/posts", views.UserPostsView.as_view(), name="user-posts"),
    path("users/<str:username>/follow", views.FollowView.as_view(), name="user-follow"),
    path("users/<str:username>/block", views.BlockView.as_view(), name="user-block"),
    path("feed", views.FeedView.as_view(), name="feed"),
    path("guardians/link", views.GuardianLinkView.as_view(), name="guardian-link"),
    path("guardians/teens/<str:username>", views.GuardianTeenView.as_view(), name="guardian-teen"),
    path(
        "guardians/teens/<str:username>/controls",
        views.GuardianControlsView.as_view(),
        name="guardian-teen-controls",
    ),
    path("posts/<str:post_id>", views.PostDetailView.as_view(), name="post-detail"),
    path("posts/<str:post_id>/publish", views.PostPublishView.as_view(), name="post-publish"),
    path("posts/<str:post_id>/like", views.PostLikeView.as_view(), name="post-like"),
    path("posts/<str:post_id>/comments", views.PostCommentsView.as_view(), name="post-comments"),
    path("posts/<str:post_id>/report", views.PostReportView.as_view(), name="post-report"),
    path("views", views.ViewEventsView.as_view(), name="view-events"),
    path("notifications", views.NotificationsView.as_view(), name="notifications"),
    path("notifications/read", views.NotificationsReadView.as_view(), name="notifications-read"),
]
