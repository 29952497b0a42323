"""The two storages' URL rules, without a network: S3 URLs are presigned locally by botocore."""

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.storage import MediaS3Storage, PrivateFileSystemStorage, PrivateS3Storage, biometric_storage
from tests.core.test_logging_and_settings import import_settings

S3_OPTIONS = {
    "bucket_name": "reelforge-media",
    "access_key": "AKIAEXAMPLEEXAMPLE00",
    "secret_key": "not-a-real-secret-key-0000000000000000000",
    "region_name": "eu-west-1",
    "signature_version": "s3v4",
}


def test_media_urls_on_s3_are_presigned_and_expire():
    storage = MediaS3Storage(**S3_OPTIONS, querystring_expire=120)
    url = storage.url("posts/7/clip.mp4")
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert parts.path.endswith("/posts/7/clip.mp4")
    assert query["X-Amz-Expires"] == ["120"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Signature"][0]
    assert storage.default_acl is None  # objects keep the bucket's own (private) access


@pytest.mark.parametrize(
    "options",
    [{"querystring_auth": False}, {"custom_domain": "cdn.example.com"}],
    ids=["unsigned", "cdn-without-cloudfront-keys"],
)
def test_media_storage_refuses_unsigned_urls(options):
    with pytest.raises(ImproperlyConfigured):
        MediaS3Storage(**S3_OPTIONS, **options)


def test_biometric_storages_give_no_url():
    with pytest.raises(ValueError):
        PrivateS3Storage(**S3_OPTIONS).url("cameos/abc.png")
    with pytest.raises(ValueError):
        PrivateFileSystemStorage().url("cameos/abc.png")


def test_the_private_folder_follows_its_setting_and_is_not_the_media(settings, tmp_path):
    settings.BIOMETRICS_ROOT = str(tmp_path / "private")
    assert biometric_storage().location == str(tmp_path / "private")
    assert not biometric_storage().location.startswith(settings.MEDIA_ROOT)


@pytest.mark.parametrize(
    "overrides",
    [
        {"MEDIA_ROOT": "/srv/data/media", "BIOMETRICS_ROOT": "/srv/data/media/biometrics"},
        {"MEDIA_ROOT": "/srv/data/media", "BIOMETRICS_ROOT": "/srv/data/media"},
        {"AWS_STORAGE_BUCKET_NAME": "one-bucket", "AWS_BIOMETRICS_BUCKET_NAME": "one-bucket"},
    ],
    ids=["folder-inside-media", "same-folder", "same-bucket"],
)
def test_settings_refuse_biometrics_inside_the_media(overrides):
    result = import_settings(overrides)
    assert result.returncode != 0
    assert "BIOMETRICS_ROOT / AWS_BIOMETRICS_BUCKET_NAME" in result.stderr


@pytest.mark.django_db
def test_post_rendering_on_s3_signs_a_drafts_media_for_the_ttl(settings, monkeypatch):
    from social.api.serializers import PostRendering
    from social.models import Post

    settings.MEDIA_URL_TTL_S = 90
    storage = MediaS3Storage(**S3_OPTIONS, querystring_expire=settings.MEDIA_URL_TTL_S)
    monkeypatch.setattr(Post._meta.get_field("video"), "storage", storage)
    rendering = PostRendering(None)
    assert rendering.database_media_prefix() is None  # the feeds render in Python on S3
    for status in ("draft", "published"):
        query = parse_qs(urlsplit(rendering.url("posts/7/clip.mp4", status=status)).query)
        assert query["X-Amz-Expires"] == ["90"] and query["X-Amz-Signature"][0], status
    assert rendering.url("posts/7/clip.mp4", status="removed") is None
