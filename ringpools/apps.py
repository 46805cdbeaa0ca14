from django.apps import AppConfig


class RingpoolsConfig(AppConfig):
    name = "ringpools"
    verbose_name = "RingPools"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from config.timestamps import fast_timestamps_register
        from ringpools import signals  # noqa: F401  (CORS decision per pool)

        connection_created.connect(fast_timestamps_register, dispatch_uid="fast-timestamps")
