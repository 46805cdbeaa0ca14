"""`{% needs_attention as attention %}` (admin index) and `{% open_alerts account as alerts %}` (the
customer's banners)."""

from __future__ import annotations

from typing import Any

from django import template

from accounts.models import Account
from scaling.admin.alerts import needs_attention as attention_block
from scaling.alerts.pages import account_banners

register = template.Library()


@register.simple_tag
def needs_attention() -> dict[str, Any]:
    return attention_block()


@register.simple_tag
def open_alerts(account: Account | None) -> list[Any]:
    return account_banners(account) if account is not None else []
