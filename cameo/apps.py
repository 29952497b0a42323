from django.apps import AppConfig


class CameoConfig(AppConfig):
    name = "cameo"
    verbose_name = "Cameos"

    def ready(self):
        from cameo import receivers  # noqa: F401
        from cameo.identity import check_configured_encoder

        # A configured encoder whose model files are missing stops startup, naming what it needs.
        check_configured_encoder()
        from django.db.models.signals import post_save

        from cameo.services import (
            cap_permissions_by_guardian,
            count_appearances_on_publish,
            refuse_publish_without_consent,
            uncount_published_appearances,
        )
        from social.hooks import register_cameo_cap_set, register_posts_leaving, register_publish_check

        register_publish_check(refuse_publish_without_consent)
        # A guardian's cap on a minor's cameos lowers the wider ones at once.
        register_cameo_cap_set(cap_permissions_by_guardian)
        # Trending: a post saved as published counts its cameos' appearances (in its transaction),
        # and posts taken down or deleted (one by one or with their account) stop counting.
        register_posts_leaving(uncount_published_appearances)
        post_save.connect(
            count_appearances_on_publish,
            sender="social.Post",
            dispatch_uid="cameo.count_appearances_on_publish",
        )

        from django.conf import settings

        from cameo.services import dispatch_enrollments
        from core import periodic

        periodic.register(
            "cameo.dispatch_enrollments",
            every_s=settings.CAMEO_ENROLL_DISPATCH_EVERY_S,
            run=dispatch_enrollments,
        )
