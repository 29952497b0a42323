from django.apps import AppConfig


class SocialConfig(AppConfig):
    name = "social"
    verbose_name = "Social"

    def ready(self):
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from social.feed import forget_kept_posts
        from social.models import Post

        def drop_kept_posts(sender, instance, **kwargs):
            # Now for this transaction's own reads, and again at commit so that what another
            # request kept in between does not outlive the change.
            forget_kept_posts(instance.author_id)
            transaction.on_commit(lambda: forget_kept_posts(instance.author_id))

        post_save.connect(
            drop_kept_posts, sender=Post, weak=False, dispatch_uid="social.feed.drop_pool_on_save"
        )
        post_delete.connect(
            drop_kept_posts, sender=Post, weak=False, dispatch_uid="social.feed.drop_pool_on_delete"
        )

        from core.realtime import end_sessions
        from social.models import User

        def end_sessions_of_inactive(sender, instance, **kwargs):
            # A deactivated account's open websockets close (4401), as its tokens stop working.
            if not instance.is_active:
                end_sessions(instance.pk)

        post_save.connect(
            end_sessions_of_inactive, sender=User, weak=False, dispatch_uid="social.end_sessions_of_inactive"
        )

        from django.conf import settings

        from core import periodic
        from social import exports

        # What the higher apps put in a data export (their `exports` modules), without naming them.
        exports.discover_sections()
        for name, run in (
            ("social.exports.dispatch", exports.dispatch_exports),
            ("social.exports.reap_stale", exports.reap_stale_exports),
            ("social.exports.delete_expired", exports.delete_expired_exports),
        ):
            periodic.register(name, every_s=settings.EXPORT_PERIODIC_EVERY_S, run=run)
