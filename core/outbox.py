"""Rows as the source of truth for work sent to the broker (an outbox).

A row that needs a worker (a generation job, an enrollment) is committed first, with the time it
was last sent (`sent_field`, null until then). `dispatch_due` sends the rows that are due and
stamps them: on commit of the write that made them, and periodically for those the broker could
not take then or whose message may have been lost since (a broker restarted empty, a message
dropped). Sending a row twice is harmless because every task here claims its row idempotently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


def broker_answers() -> bool:
    """Whether the broker answers now, within BROKER_CONNECT_TIMEOUT_S (kombu's own connection
    retries on a send would hold the caller for many seconds). Behind a circuit breaker: after a
    failure nothing is sent for BREAKER_RESET_S, so requests made while the broker is down cost
    nothing and their rows wait for the periodic pass."""
    from celery import current_app

    from core.breaker import breaker_for, describe_url

    breaker = breaker_for(
        f"broker {describe_url(current_app.conf.broker_url)}", reset_after_s=settings.BREAKER_RESET_S
    )
    if not breaker.allow():
        return False
    try:
        with current_app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=settings.BROKER_CONNECT_TIMEOUT_S
            )
    except Exception as exc:
        breaker.record_failure(exc)
        return False
    breaker.record_success()
    return True


def dispatch_due(
    *, due: QuerySet, sent_field: str, send: Callable[[int], None], limit: int = 200
) -> list[int]:
    """Sends each row of `due` (`send(pk)`, unsent and least recently sent first) and stamps its
    `sent_field`; returns the ids sent. Rows are taken with SKIP LOCKED, so dispatchers never wait
    for each other nor send a row twice at once; the first broker failure ends the pass and leaves
    the rest due. Never raises for a broker failure."""
    sent: list[int] = []
    if not broker_answers():
        return sent
    with transaction.atomic():
        rows = due.select_for_update(skip_locked=True).order_by(sent_field, "pk").values_list("pk", flat=True)
        for pk in rows[:limit]:
            try:
                send(pk)
            except Exception as exc:
                logger.warning("%s %s not sent, the broker refused: %s", due.model._meta.label, pk, exc)
                break
            sent.append(pk)
        if sent:
            due.model.objects.filter(pk__in=sent).update(**{sent_field: timezone.now()})
    return sent
