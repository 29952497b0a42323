from celery import shared_task
from django.db import InterfaceError, OperationalError

# For tasks that run a job whose row is the source of truth: a delivery that met an unreachable
# database (a restart, a failover) is tried again within seconds instead of waiting for the outbox
# to send the job again (GENERATION_REDISPATCH_AFTER_S and the like: minutes). The tasks are
# idempotent, so a retry that finds the job taken or done does nothing; after the last retry the
# outbox remains.
RETRY_WHILE_THE_DATABASE_IS_AWAY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": False,
    "max_retries": 8,
}


@shared_task(name="core.tasks.echo")
def echo(value):
    """Returns what it was given: proves a task travels through the broker to a worker and back."""
    return {"echo": value}
