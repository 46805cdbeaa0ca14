from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.access import accounts_of


def account_menu(request: HttpRequest) -> dict[str, Any]:
    """The sidebar's account switcher, on customer-area pages only (queried only if drawn)."""
    access = getattr(request, "access", None)
    if access is None:
        return {}
    return {"access": access, "switch_accounts": accounts_of(request.user).order_by("name", "pk")}
