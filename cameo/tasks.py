from celery import shared_task

from cameo import services


@shared_task(name="cameo.tasks.enroll_cameo", acks_late=True)
def enroll_cameo(cameo_id: int) -> str | None:
    """Analyses an uploaded verification video; running it twice changes nothing."""
    cameo = services.enroll(cameo_id=cameo_id)
    return cameo.status if cameo else None
