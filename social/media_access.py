"""Who may fetch a post's media file from MEDIA_ROOT: anyone for a published post's video and
poster; for anything else (drafts, removed posts), only the holder of a signed URL that has not
expired (MEDIA_URL_TTL_S). Everything else is the same 404, whether the file exists or not.

The local disk's counterpart of S3's presigned URLs (core.storage.MediaS3Storage): `signed_query`
signs a stored name for `PostRendering.url`; `serve_media` replaces django.views.static.serve,
which served every file under MEDIA_ROOT to anyone, when SERVE_MEDIA is on (`media_urlpatterns`).
"""

from __future__ import annotations

import mimetypes
import os
import re
import time
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core import signing
from django.core.exceptions import SuspiciousFileOperation
from django.db.models import Q
from django.http import FileResponse, HttpResponse
from django.urls import re_path
from django.views.decorators.http import require_safe

from core.errors import json_not_found
from social.models import Post, PostStatus

_SALT = "social.media_access"
# Stored names of post media (social.services.post_media_path_for): the author bounds the lookup.
_POST_MEDIA = re.compile(r"posts/(\d{1,18})/[^/]+")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")


def _now() -> float:
    return time.time()


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SALT, algorithm="sha256")


def signed_query(name: str) -> str:
    """The query string that lets anyone holding it fetch `name` (and only it) for MEDIA_URL_TTL_S."""
    expires = int(_now()) + settings.MEDIA_URL_TTL_S
    return urlencode({"expires": expires, "signature": _signer().signature(f"{expires}:{name}")})


def signature_holds(name: str, expires: str, signature: str) -> bool:
    """Whether `signature` was made by `signed_query` for exactly `name` and `expires`, not past."""
    if not _EXPIRES.fullmatch(expires) or int(expires) < _now():
        return False
    try:
        _signer().unsign(f"{expires}:{name}:{signature}")  # constant-time, SECRET_KEY_FALLBACKS too
    except signing.BadSignature:
        return False
    return True


def is_published_media(name: str) -> bool:
    match = _POST_MEDIA.fullmatch(name)
    if match is None:
        return False
    posts = Post.objects.filter(author_id=int(match[1]), status=PostStatus.PUBLISHED)
    return posts.filter(Q(video=name) | Q(poster=name)).exists()


@require_safe
def serve_media(request, path: str):
    """GET and HEAD of one file under MEDIA_ROOT, with single byte ranges (video players seek)."""
    query = request.GET
    signed = signature_holds(path, query.get("expires", ""), query.get("signature", ""))
    local = _local_file(path) if signed or is_published_media(path) else None
    if local is None:
        return json_not_found(request)
    response = _file_response(request, local)
    # A post leaves `published` at once; shared caches keep its media a few minutes at most.
    response["Cache-Control"] = "private, no-store" if signed else "public, max-age=300"
    return response


def _local_file(name: str) -> str | None:
    from django.core.files.storage import default_storage

    try:
        local = default_storage.path(name)  # refuses names that leave MEDIA_ROOT
    except (SuspiciousFileOperation, ValueError, NotImplementedError):
        return None
    return local if os.path.isfile(local) else None


def _file_response(request, local: str) -> HttpResponse:
    size = os.path.getsize(local)
    content_type = mimetypes.guess_type(local)[0] or "application/octet-stream"
    span = _requested_span(request, size)
    if span == "unsatisfiable":
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
    elif request.method == "HEAD":
        response = HttpResponse(content_type=content_type, status=200 if span is None else 206)
    elif span is None:
        response = FileResponse(open(local, "rb"), content_type=content_type)  # noqa: SIM115 - it closes
    else:
        handle = open(local, "rb")  # noqa: SIM115 - FileResponse closes it
        handle.seek(span[0])
        response = FileResponse(_Slice(handle, span[1] - span[0] + 1), content_type=content_type, status=206)
    if span is None:
        response["Content-Length"] = str(size)
    elif span != "unsatisfiable":
        response["Content-Length"] = str(span[1] - span[0] + 1)
        response["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    response["Accept-Ranges"] = "bytes"
    return response


def _requested_span(request, size: int):
    """(first, last) byte of a single-range request, None for the whole file (no Range, or one this
    server ignores as RFC 9110 allows: several ranges, bad syntax, If-Range), or "unsatisfiable"."""
    header = request.headers.get("Range")
    if not header or request.headers.get("If-Range"):
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last `last` bytes
        length = int(last)
        return (max(0, size - length), size - 1) if length and size else "unsatisfiable"
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        return "unsatisfiable"
    return int(first), min(int(last), size - 1) if last else size - 1


class _Slice:
    """`length` bytes of an open file from its position, for FileResponse (which closes it)."""

    def __init__(self, handle, length: int):
        self.handle, self.remaining = handle, length

    def read(self, size: int = -1) -> bytes:
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.handle.read(size)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.handle.close()


def media_urlpatterns() -> list:
    """The route of `serve_media` at MEDIA_URL's path (mounted when SERVE_MEDIA is on)."""
    prefix = re.escape(urlsplit(settings.MEDIA_URL).path.lstrip("/"))
    return [re_path(rf"^{prefix}(?P<path>.*)$", serve_media, name="media")]
