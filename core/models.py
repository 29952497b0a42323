from django.db import models


class PeriodicRun(models.Model):
    """When each periodic job last started: the row every scheduler locks before running it, so a
    job runs once per interval however many schedulers are up (see core.periodic)."""

    name = models.CharField(max_length=80, primary_key=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} (last started {self.last_started_at})"
