"""Celery tasks of the social app: thin, take ids, idempotent.

`build_export` runs on the `default` queue with late acknowledgement; the export's row (claimed
with an attempt count and a heartbeat, see social/exports.py) decides whether a delivery still has
work to do, and the periodic jobs send again or take again what a lost message or a dead worker
left.
"""

from __future__ import annotations

from celery import shared_task

from core.tasks import RETRY_WHILE_THE_DATABASE_IS_AWAY
from social import exports


@shared_task(
    name="social.tasks.build_export", acks_late=True, ignore_result=True, **RETRY_WHILE_THE_DATABASE_IS_AWAY
)
def build_export(export_id: int) -> str | None:
    export = exports.execute_export(int(export_id))
    return None if export is None else export.status
