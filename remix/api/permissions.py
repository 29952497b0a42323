from rest_framework.permissions import BasePermission


class RecordsRevenueEvents(BasePermission):
    """Staff, or a service account (the ad server) granted `remix.record_revenue_events`."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(
            user and user.is_authenticated and (user.is_staff or user.has_perm("remix.record_revenue_events"))
        )
