"""Writes of the accounts app: the carrier credentials (replace, confirm, discard)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from accounts import secrets
from accounts.models import Account, User

log = logging.getLogger(__name__)


@transaction.atomic
def account_carrier_token_replace(
    *, account: Account, token: str, actor: User | None, immediately: bool = False
) -> Account:
    """Give the account a new carrier auth token.

    With a token already in force the new one waits as a replacement: webhooks signed with either are
    accepted until the first one signed with the new token arrives (the carrier has switched), which
    retires the old one. `immediately` (or no token yet) puts it in force at once.
    """
    locked = Account.objects.select_for_update().get(pk=account.pk)
    token = token.strip()
    if immediately or not locked.has_carrier_auth_token:
        # At once means the old token is retired now (say, it leaked): no overlap.
        locked.carrier_auth_token = token
        locked.carrier_auth_token_next_encrypted = ""
        locked.carrier_auth_token_previous_encrypted = ""
        state = "in force"
    else:
        locked.carrier_auth_token_next_encrypted = secrets.encrypt(token)
        state = "waiting for the first webhook signed with it"
    locked.carrier_auth_token_changed_at = timezone.now()
    locked.save(update_fields=_TOKEN_FIELDS)
    _copy_token_fields(locked, account)
    log.info("Account %s: carrier auth token replaced by %s (%s)", account.pk, actor, state)
    return account


@transaction.atomic
def account_carrier_token_confirm(*, account: Account, token: str) -> bool:
    """A webhook arrived signed with the pending replacement: put it in force; the old token keeps
    validating for CARRIER_TOKEN_OVERLAP (calls signed just before the switch). Returns False when
    another request (or a newer replacement) got there first."""
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if not locked.carrier_auth_token_next_encrypted or locked.carrier_auth_token_next != token:
        return False
    locked.carrier_auth_token_previous_encrypted = locked.carrier_auth_token_encrypted
    locked.carrier_auth_token_encrypted = locked.carrier_auth_token_next_encrypted
    locked.carrier_auth_token_next_encrypted = ""
    locked.carrier_auth_token_changed_at = timezone.now()
    locked.save(update_fields=_TOKEN_FIELDS)
    _copy_token_fields(locked, account)
    log.info(
        "Account %s: the carrier now signs with the replacement token; the old one is retired", account.pk
    )
    return True


@transaction.atomic
def account_carrier_token_discard_pending(*, account: Account, actor: User | None) -> Account:
    locked = Account.objects.select_for_update().get(pk=account.pk)
    if locked.carrier_auth_token_next_encrypted:
        locked.carrier_auth_token_next_encrypted = ""
        locked.carrier_auth_token_changed_at = timezone.now()
        locked.save(update_fields=_TOKEN_FIELDS)
        log.info("Account %s: pending carrier auth token discarded by %s", account.pk, actor)
    _copy_token_fields(locked, account)
    return account


_TOKEN_FIELDS = [
    "carrier_auth_token_encrypted",
    "carrier_auth_token_next_encrypted",
    "carrier_auth_token_previous_encrypted",
    "carrier_auth_token_changed_at",
]


def _copy_token_fields(source: Account, target: Account) -> None:
    for field in _TOKEN_FIELDS:
        setattr(target, field, getattr(source, field))
