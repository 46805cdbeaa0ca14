from django.apps import AppConfig


class ScalingConfig(AppConfig):
    name = "scaling"
    verbose_name = "Auto-scaling"

    def ready(self) -> None:
        # The periodic tasks' run records: Celery's task signals, connected in every process.
        from scaling.jobs import records  # noqa: F401
