"""The Celery app: JSON only, late acknowledgement, explicit `default` and `gpu` queues."""

import os

from celery import Celery
from celery.signals import worker_init
from kombu import Exchange, Queue

from config.env import load_dev_env

load_dev_env()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("reelforge")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("gpu", Exchange("gpu"), routing_key="gpu"),
)
app.conf.task_default_exchange = "default"
app.conf.task_default_routing_key = "default"
# Tasks name their queue where they are declared; everything else runs on `default`.
app.conf.task_routes = {
    "generation.tasks.run_generation": {"queue": "gpu", "routing_key": "gpu"},
    "generation.tasks.render_shot": {"queue": "gpu", "routing_key": "gpu"},
}
app.autodiscover_tasks()


@worker_init.connect
def _require_services(**kwargs) -> None:
    from core.startup import require_services

    require_services()
