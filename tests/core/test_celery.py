import pytest
from celery.contrib.testing.worker import start_worker

from config.celery import app
from core.tasks import echo


@pytest.fixture(scope="module")
def celery_worker_on_real_broker():
    """A worker thread consuming the real Redis broker's `default` and `gpu` queues."""
    with start_worker(
        app, pool="solo", perform_ping_check=False, queues=["default", "gpu"], loglevel="WARNING"
    ):
        yield


def test_task_travels_through_the_broker_to_a_worker_and_back(celery_worker_on_real_broker):
    assert app.conf.broker_url.startswith("redis://")
    result = echo.delay({"hello": "world"})
    assert result.get(timeout=20) == {"echo": {"hello": "world"}}


def test_task_routed_to_gpu_queue_is_consumed(celery_worker_on_real_broker):
    result = echo.apply_async(args=[7], queue="gpu")
    assert result.get(timeout=20) == {"echo": 7}


def test_celery_configuration_is_safe_for_long_gpu_work():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit > conf.task_soft_time_limit > 0
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert {queue.name for queue in conf.task_queues} == {"default", "gpu"}
