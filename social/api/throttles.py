"""Sign-in and sign-up limits, per client address and per username.

The client address is the socket's, or, behind TRUSTED_PROXY_COUNT proxies, the address the
outermost trusted proxy saw (DRF's NUM_PROXIES reads X-Forwarded-For from the right): a header the
client wrote itself never chooses its own bucket. The per-username limit holds however many
addresses a guesser spreads over.
"""

from __future__ import annotations

import hashlib

from django.http import HttpResponse
from rest_framework.throttling import SimpleRateThrottle


class AuthRateThrottle(SimpleRateThrottle):
    """Sign-in and sign-up attempts per client address (AUTH_THROTTLE_RATE)."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class UsernameRateThrottle(SimpleRateThrottle):
    """Sign-in attempts per username, from anywhere (AUTH_USERNAME_THROTTLE_RATE)."""

    scope = "auth_username"

    def get_cache_key(self, request, view):
        data = getattr(request, "data", None)
        if data is None:  # a Django request (the admin's login form)
            data = request.POST
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username.strip():
            return None
        # Hashed: a username may hold any character, a cache key should not.
        ident = hashlib.sha256(username.strip().casefold().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


SIGN_IN_THROTTLES = (AuthRateThrottle, UsernameRateThrottle)


def throttled_sign_in(login_view):
    """The admin's login view under the API's sign-in limits: a POST past either limit is a 429
    with Retry-After, before the password is checked."""

    def view(request, *args, **kwargs):
        if request.method == "POST":
            waits = []
            for throttle_class in SIGN_IN_THROTTLES:
                throttle = throttle_class()
                if not throttle.allow_request(request, None):
                    waits.append(throttle.wait() or 1)
            if waits:
                response = HttpResponse("Too many sign-in attempts; try again later.", status=429)
                response["Retry-After"] = str(int(max(waits)) + 1)
                return response
        return login_view(request, *args, **kwargs)

    return view
