from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.urls import reverse
from django.utils.html import format_html

from social import services
from social.api.throttles import throttled_sign_in
from social.models import DataExport, Post, Report, User

# The admin's sign-in form is a way to guess passwords too: the API's limits apply to it.
admin.site.login = throttled_sign_in(admin.site.login)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + (
        ("Profile", {"fields": ("display_name", "bio", "birth_date", "tier")}),
    )
    list_display = ("username", "display_name", "tier", "is_staff", "date_joined")
    readonly_fields = ("followers_count", "following_count", "posts_count")


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    """Read-only: every field of a post is owned by a service (publishing runs the consent checks,
    `cameo_owner_ids` decides who may take it down), so staff act through the take-down action."""

    list_display = ("id", "author", "status", "caption", "like_count", "view_count", "created_at")
    list_filter = ("status",)
    search_fields = ("caption", "prompt", "author__username")
    list_select_related = ("author",)
    actions = ["take_down"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Post._meta.fields] + ["video_link"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="video")
    def video_link(self, post):
        from social.api.serializers import PostRendering

        url = PostRendering(request=None).url(post.video.name, status=post.status)
        return format_html('<a href="{}">watch</a>', url) if url else "-"

    @admin.action(description="Take down the selected posts", permissions=["view"])
    def take_down(self, request, queryset):
        for post in queryset:
            services.take_down_post(actor=request.user, post=post)
        self.message_user(request, f"{queryset.count()} post(s) taken down.", messages.SUCCESS)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    """The moderation queue: open reports oldest first; take down the post or dismiss the report."""

    list_display = ("id", "post_link", "post_status", "reporter", "reason", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("reason", "reporter__username", "post__caption")
    list_select_related = ("post", "reporter")
    raw_id_fields = ("reporter", "post", "resolved_by")
    readonly_fields = ("resolved_at", "resolved_by", "created_at")
    ordering = ("status", "created_at")
    actions = ["take_down_reported_posts", "dismiss"]

    @admin.display(description="post")
    def post_link(self, report):
        url = reverse("admin:social_post_change", args=[report.post_id])
        return format_html('<a href="{}">post {}</a>', url, report.post_id)

    @admin.display(description="post status")
    def post_status(self, report):
        return report.post.status

    @admin.action(description="Take down the reported posts")
    def take_down_reported_posts(self, request, queryset):
        posts = Post.objects.filter(pk__in=queryset.values("post_id"))
        for post in posts:
            services.take_down_post(actor=request.user, post=post)
        self.message_user(request, f"{len(posts)} post(s) taken down.", messages.SUCCESS)

    @admin.action(description="Dismiss the selected reports")
    def dismiss(self, request, queryset):
        count = services.dismiss_reports(actor=request.user, reports=list(queryset))
        self.message_user(request, f"{count} report(s) dismissed.", messages.SUCCESS)


@admin.register(DataExport)
class DataExportAdmin(admin.ModelAdmin):
    """Read-only, for watching exports (failed, stuck); the ZIP is its owner's alone, so neither
    its file nor the token of its name is shown."""

    list_display = ("id", "user", "status", "progress", "attempts", "created_at", "expires_at", "error_code")
    list_filter = ("status",)
    search_fields = ("user__username",)
    list_select_related = ("user",)
    exclude = ("file", "token")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in DataExport._meta.fields if field.name not in self.exclude]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
