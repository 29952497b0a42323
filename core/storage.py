"""The two storages: post media (public or signed URLs) and biometrics (private, no URL at all).

Biometric files are kept apart so that no configuration of the media storage (a served
MEDIA_ROOT, a public bucket) can expose them: the private storage has no URL to give.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, storages
from django.utils.functional import cached_property
from storages.backends.s3 import S3Storage


class MediaS3Storage(S3Storage):
    """Post media in a bucket without public access: every URL is presigned and expires after
    MEDIA_URL_TTL_S (`querystring_expire`), a published post's as a draft's, so no URL of a draft
    outlives its signature. A custom domain (a CDN reading the bucket) must sign with CloudFront
    keys: unsigned, it would serve any object, drafts included, to whoever learns a name."""

    querystring_auth = True
    default_acl = None  # the bucket's own: private; never public-read, whatever AWS_DEFAULT_ACL says

    def __init__(self, **settings):
        super().__init__(**settings)
        if not self.querystring_auth or (self.custom_domain and not self.cloudfront_signer):
            raise ImproperlyConfigured(
                "Post media URLs must be signed: keep querystring_auth on, and give a custom domain "
                "AWS_CLOUDFRONT_KEY_ID and AWS_CLOUDFRONT_KEY."
            )


class PrivateFileSystemStorage(FileSystemStorage):
    """A folder outside MEDIA_ROOT (BIOMETRICS_ROOT, read as FileSystemStorage reads MEDIA_ROOT, so
    an overridden setting moves it) whose files have no URL."""

    @cached_property
    def base_location(self):
        return self._value_or_setting(self._location, settings.BIOMETRICS_ROOT)

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "BIOMETRICS_ROOT":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)

    def url(self, name):
        raise ValueError("Biometric files have no URL.")


class PrivateS3Storage(S3Storage):
    """A bucket without public access whose objects have no URL (not even a presigned one)."""

    default_acl = "private"
    querystring_auth = True

    def url(self, name, parameters=None, expire=None, http_method=None):
        raise ValueError("Biometric files have no URL.")


def biometric_storage():
    """The private storage of biometric files; a callable, so FileFields resolve it per settings."""
    return storages["biometrics"]
