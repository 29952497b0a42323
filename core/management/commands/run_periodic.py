import logging
import signal
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from core.periodic import registered_jobs, run_due_jobs

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Runs the registered periodic jobs (reaping dead generation jobs, re-sending lost ones, ...) "
        "for as long as it lives. Each job runs once per interval however many of these run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tick", type=float, default=1.0, help="Seconds between scheduler passes.")
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")

    def handle(self, *args, tick: float, once: bool, **options):
        stopping = False

        def stop(*_args):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        names = ", ".join(f"{job.name} every {job.every_s:g} s" for job in registered_jobs())
        self.stdout.write(f"periodic jobs: {names}")
        while not stopping:
            try:
                run_due_jobs()
            except Exception:
                # The database went away mid-pass: drop the connection and try again next tick.
                logger.exception("periodic pass failed")
                connection.close()
            if once:
                return
            close_old_connections()
            time.sleep(tick)
