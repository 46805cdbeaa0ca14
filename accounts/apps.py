from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


def _register_roles_after_the_last_app(sender: AppConfig, **kwargs: Any) -> None:
    # post_migrate is sent once per app; permissions of every app exist only after the last one.
    if sender is list(apps.get_app_configs())[-1]:
        from accounts.roles import roles_register

        roles_register()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        post_migrate.connect(_register_roles_after_the_last_app, dispatch_uid="accounts.register_roles")
        from accounts import checks  # noqa: F401  (registers the deploy check of password-reset mail)
