from django.apps import AppConfig


class RingpoolsConfig(AppConfig):
    name = "ringpools"
    verbose_name = "RingPools"

    def ready(self) -> None:
        from ringpools import signals  # noqa: F401  (CORS decision per pool)
