from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"

    def ready(self) -> None:
        from generation.services import used_today
        from social.selectors import register_daily_usage_counter

        register_daily_usage_counter(used_today)
