from celery import shared_task

from cameo import services
from core.tasks import RETRY_WHILE_THE_DATABASE_IS_AWAY


@shared_task(name="cameo.tasks.enroll_cameo", acks_late=True, **RETRY_WHILE_THE_DATABASE_IS_AWAY)
def enroll_cameo(cameo_id: int) -> str | None:
    """Analyses an uploaded verification video; running it twice changes nothing."""
    cameo = services.enroll(cameo_id=cameo_id)
    return cameo.status if cameo else None
