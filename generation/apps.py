from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation.services import used_today
        from social.selectors import register_daily_usage_counter

        register_daily_usage_counter(used_today)

        from cameo.signals import cameo_revoked

        cameo_revoked.connect(_block_jobs_on_revocation, dispatch_uid="generation.block_on_revocation")


def _block_jobs_on_revocation(sender, cameo_id: int, consent_version: int, **kwargs) -> None:
    from generation.services import block_jobs_using_cameo

    block_jobs_using_cameo(cameo_id=cameo_id, consent_version=consent_version)
