"""Limits on writes that reach other people (follows, comments, requests to use a cameo): a view
names its `throttle_scope`, and the rate of that scope (settings, `<SCOPE>_RATE`) counts each
user's writes. Reads are not counted."""

from rest_framework.throttling import ScopedRateThrottle

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class WriteRateThrottle(ScopedRateThrottle):
    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
