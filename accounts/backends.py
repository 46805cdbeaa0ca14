from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class SignInThrottleBackend(AxesStandaloneBackend):
    """django-axes' lockout check for every sign-in that comes with a request (every web form).

    Calls without a request (the test client's `login()`, a shell) have no client address to throttle
    and are left to the next backend instead of failing with AxesBackendRequestParameterRequired.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
