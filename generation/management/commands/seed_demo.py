from django.core.management.base import BaseCommand

from social.demo import seed_social_demo


class Command(BaseCommand):
    help = "Loads the demo shown by `make run`; running it again changes nothing."

    def handle(self, *args, **options):
        users = seed_social_demo()
        self.stdout.write(f"demo: {len(users)} users")
