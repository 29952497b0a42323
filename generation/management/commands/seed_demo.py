from django.core.management.base import BaseCommand

from cameo.demo import seed_cameo_demo
from generation.demo import seed_generation_demo
from remix.demo import seed_remix_demo
from social.demo import seed_social_demo


class Command(BaseCommand):
    help = "Loads the demo shown by `make run`; running it again changes nothing."

    def handle(self, *args, **options):
        users = seed_social_demo()
        self.stdout.write(f"demo: {len(users)} users")
        cameo = seed_cameo_demo(users)
        self.stdout.write(f"demo: alice's cameo {cameo.status if cameo else 'not made'}")
        posts = seed_generation_demo(users)
        self.stdout.write(f"demo: {len(posts)} generated posts")
        remix = seed_remix_demo()
        self.stdout.write(f"demo: remix chain {remix.get('chain')}, {remix['events']} revenue events")
