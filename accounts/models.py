from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser
from django.db import models
from timezone_field import TimeZoneField

from accounts import secrets
from accounts.choices import Role

# Calls the carrier signed with the old token just before it switched may arrive this much later.
CARRIER_TOKEN_OVERLAP = timedelta(minutes=10)


class User(AbstractUser):
    """A person. `is_staff` users are our account managers; customers reach accounts through Membership."""

    alert_emails = models.BooleanField(
        "e-mail me about alerts",
        default=True,
        help_text="An e-mail when an alert about your pools (or, for account managers, any alert) opens "
        "and when it is resolved.",
    )
    alert_digest = models.BooleanField(
        "daily alert digest",
        default=False,
        help_text="Each morning (UTC), one e-mail with the alerts open and those resolved in the last day.",
    )


class Account(models.Model):
    """A customer of the call-tracking platform."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    timezone = TimeZoneField(default="UTC", help_text="Month-end pruning runs on the last day in this zone.")
    auto_scaling_available = models.BooleanField(
        "RingPool Auto-Scaling available",
        default=True,
        help_text="Staff-controlled: whether the feature (and its Settings page) exists for this account.",
    )
    carrier_account_sid = models.CharField(max_length=64, blank=True)
    # The carrier's auth token signs the call webhooks of this account's numbers: whoever reads it can
    # forge calls. Stored only encrypted (accounts.secrets), never rendered; a replacement waits in
    # `_next` until the first webhook signed with it proves the carrier uses it, and the token it replaces
    # still validates for CARRIER_TOKEN_OVERLAP after that, for calls the carrier signed just before it
    # switched (rotation without refusing a call).
    carrier_auth_token_encrypted = models.TextField(blank=True, editable=False)
    carrier_auth_token_next_encrypted = models.TextField(blank=True, editable=False)
    carrier_auth_token_previous_encrypted = models.TextField(blank=True, editable=False)
    carrier_auth_token_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("change_carrier_credentials", "Can replace the carrier credentials"),
            # Staff open customers' pages (read-only) only with this: the account managers' role.
            ("open_customer_area", "Can open every account's customer pages, read-only"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def carrier_auth_token(self) -> str:
        """The token in force (decrypted on each read; never keep it around)."""
        return secrets.decrypt(self.carrier_auth_token_encrypted)

    @carrier_auth_token.setter
    def carrier_auth_token(self, token: str) -> None:
        self.carrier_auth_token_encrypted = secrets.encrypt(token)

    @property
    def carrier_auth_token_next(self) -> str:
        """A replacement token awaiting its first signed webhook, or ""."""
        return secrets.decrypt(self.carrier_auth_token_next_encrypted)

    def carrier_auth_token_previous(self, now: datetime) -> str:
        """The token just retired by the carrier's switch, while calls signed with it may still arrive."""
        changed = self.carrier_auth_token_changed_at
        if (
            not self.carrier_auth_token_previous_encrypted
            or changed is None
            or now - changed > CARRIER_TOKEN_OVERLAP
        ):
            return ""
        return secrets.decrypt(self.carrier_auth_token_previous_encrypted)

    @property
    def has_carrier_auth_token(self) -> bool:
        return bool(self.carrier_auth_token_encrypted)


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "account"], name="membership_one_per_user_and_account"),
            models.CheckConstraint(condition=models.Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.account} ({self.get_role_display()})"
