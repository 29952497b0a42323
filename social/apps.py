from django.apps import AppConfig


class SocialConfig(AppConfig):
    name = "social"
    verbose_name = "Social"

    def ready(self):
        from django.db import transaction
        from django.db.models.signals import post_delete, post_save

        from social.feed import authors_newest, forget_recent_pool
        from social.models import Post

        def drop_recent_pool(sender, instance, **kwargs):
            # Now for this transaction's own reads, and again at commit so that a pool cached by
            # another request in between does not outlive the change.
            def forget():
                forget_recent_pool()
                authors_newest.forget(instance.author_id)

            forget()
            transaction.on_commit(forget)

        post_save.connect(
            drop_recent_pool, sender=Post, weak=False, dispatch_uid="social.feed.drop_pool_on_save"
        )
        post_delete.connect(
            drop_recent_pool, sender=Post, weak=False, dispatch_uid="social.feed.drop_pool_on_delete"
        )
