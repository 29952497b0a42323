from celery import shared_task


@shared_task(name="core.tasks.echo")
def echo(value):
    """Returns what it was given: proves a task travels through the broker to a worker and back."""
    return {"echo": value}
