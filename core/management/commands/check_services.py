from django.core.management.base import BaseCommand, CommandError

from core.startup import verify_services


class Command(BaseCommand):
    help = (
        "Checks that the database (with pgvector) and the broker answer; exits non-zero naming what does not."
    )

    def handle(self, *args, **options):
        statuses = verify_services()
        failed = [status for status in statuses if not status.ok]
        for status in statuses:
            self.stdout.write(f"{status.name}: {'ok' if status.ok else status.detail}")
        if failed:
            raise CommandError("; ".join(status.detail for status in failed))
