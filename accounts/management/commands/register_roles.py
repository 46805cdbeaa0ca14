from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.roles import roles_register


class Command(BaseCommand):
    help = (
        "Create or update the staff roles the project defines (accounts/roles.py), such as the "
        '"Account managers" group. Idempotent; also runs after every migrate.'
    )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        for line in roles_register():
            self.stdout.write(line)
