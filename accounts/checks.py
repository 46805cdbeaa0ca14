"""Deploy check of the customer area's mail: password reset needs a real mail server in production."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

NOT_SENT = {"django.core.mail.backends.dummy.EmailBackend", "django.core.mail.backends.console.EmailBackend"}


@checks.register(checks.Tags.security, deploy=True)
def password_reset_mail_is_sent(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.DEBUG or settings.EMAIL_BACKEND not in NOT_SENT:
        return []
    return [
        checks.Warning(
            "Password-reset mail is not sent anywhere (EMAIL_URL is not set).",
            hint="Set EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587.",
            id="accounts.W001",
        )
    ]
