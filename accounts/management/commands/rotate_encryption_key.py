from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import secrets
from accounts.models import Account

ENCRYPTED_FIELDS = (
    "carrier_auth_token_encrypted",
    "carrier_auth_token_next_encrypted",
    "carrier_auth_token_previous_encrypted",
)


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored carrier credential with the first key of RINGPOOL_ENCRYPTION_KEYS. "
        "Put the new "
        "key first (old ones after it), run this, then remove the old keys."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        for account_id in Account.objects.values_list("id", flat=True):
            with transaction.atomic():
                account = Account.objects.select_for_update().get(pk=account_id)
                for field in ENCRYPTED_FIELDS:
                    setattr(account, field, secrets.reencrypt(getattr(account, field)))
                account.save(update_fields=list(ENCRYPTED_FIELDS))
                rotated += 1
        self.stdout.write(f"re-encrypted the carrier credentials of {rotated} accounts with the newest key")
