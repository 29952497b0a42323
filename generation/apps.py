from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation.services import used_today
        from social.selectors import register_daily_usage_counter

        register_daily_usage_counter(used_today)

        from cameo.signals import cameo_revoked

        cameo_revoked.connect(_block_jobs_on_revocation, dispatch_uid="generation.block_on_revocation")

        from django.conf import settings

        from core import periodic
        from generation import services

        periodic.register(
            "generation.reap_stale",
            every_s=settings.GENERATION_REAP_EVERY_S,
            run=services.reap_stale_generations,
        )
        periodic.register(
            "generation.dispatch",
            every_s=settings.GENERATION_DISPATCH_EVERY_S,
            run=services.dispatch_generations,
        )


def _block_jobs_on_revocation(sender, cameo_id: int, consent_version: int, **kwargs) -> None:
    from generation.services import block_jobs_using_cameo

    block_jobs_using_cameo(cameo_id=cameo_id, consent_version=consent_version)
