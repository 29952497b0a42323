"""An enrollment uploaded while the broker is down is accepted, kept, and analysed once the broker
is back; one whose message was lost is sent again."""

import datetime as dt

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from cameo import services
from cameo.models import Cameo, CameoStatus
from tests.broker import broker_at, closed_port
from tests.cameo.conftest import clip, upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def default_queue():
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("default")
    yield broker
    broker.delete("default")


def test_an_upload_while_the_broker_is_down_is_sent_when_it_is_back(user, default_queue):
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        response = client_for(user).post(
            "/api/v1/cameos",
            {"video": upload(clip("enrollment_clip")), "display_name": "me"},
            format="multipart",
        )
    assert response.status_code == 202, response.json()
    cameo = Cameo.objects.get(pk=response.json()["id"])
    assert cameo.status == CameoStatus.PROCESSING and cameo.enrollment_sent_at is None
    assert default_queue.llen("default") == 0
    assert services.dispatch_enrollments() == [cameo.pk]
    assert default_queue.llen("default") == 1
    assert services.dispatch_enrollments() == []  # sent, and not yet overdue


def test_a_lost_enrollment_is_sent_again_and_a_finished_one_never(user, default_queue, settings):
    response = client_for(user).post(
        "/api/v1/cameos", {"video": upload(clip("enrollment_clip")), "display_name": "me"}, format="multipart"
    )
    cameo = Cameo.objects.get(pk=response.json()["id"])
    assert cameo.enrollment_sent_at is not None and default_queue.llen("default") == 1
    default_queue.delete("default")  # the broker restarted and kept nothing
    settings.CAMEO_ENROLL_RESEND_AFTER_S = 60
    Cameo.objects.filter(pk=cameo.pk).update(enrollment_sent_at=timezone.now() - dt.timedelta(seconds=61))
    assert services.dispatch_enrollments() == [cameo.pk]
    services.enroll(cameo_id=cameo.pk)
    Cameo.objects.filter(pk=cameo.pk).update(enrollment_sent_at=timezone.now() - dt.timedelta(seconds=61))
    assert services.dispatch_enrollments() == []  # analysed: nothing left to send
