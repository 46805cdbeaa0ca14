from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from timezone_field import TimeZoneField

from accounts.choices import Role


class User(AbstractUser):
    """A person. `is_staff` users are our account managers; customers reach accounts through Membership."""


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
    carrier_auth_token = models.CharField(
        max_length=128, blank=True, help_text="Signs the carrier's call webhooks for this account's numbers."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
