from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.access import accounts_of, signed_in_user


def account_menu(request: HttpRequest) -> dict[str, Any]:
    """The sidebar's account switcher, on customer-area pages only (queried only if drawn)."""
    access = getattr(request, "access", None)
    user = signed_in_user(request)
    if access is None or user is None:
        return {}
    return {"access": access, "switch_accounts": accounts_of(user).order_by("name", "pk")}
