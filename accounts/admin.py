from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from accounts.access import signed_in_user
from accounts.display import local_time
from accounts.models import Account, Membership, User
from accounts.services import account_carrier_token_discard_pending, account_carrier_token_replace

CREDENTIALS_PERMISSION = "accounts.change_carrier_credentials"
TOKEN_FIELDS = ("new_carrier_auth_token", "token_in_force_at_once", "discard_pending_token")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user", "account")


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    inlines = [MembershipInline]
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "last_login")


class AccountForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = ("name", "slug", "timezone", "auto_scaling_available", "carrier_account_sid")


class AccountCredentialsForm(AccountForm):
    """The stored token is never put in the form: it can only be replaced (write-only)."""

    new_carrier_auth_token = forms.CharField(
        label="Replace carrier auth token",
        required=False,
        strip=True,
        max_length=256,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Paste the new token from the carrier. The current one keeps validating webhooks until "
        "the first call signed with the new one arrives.",
    )
    token_in_force_at_once = forms.BooleanField(
        label="Put it in force at once",
        required=False,
        help_text="Retire the current token now instead of waiting for the carrier to sign with the new one.",
    )
    discard_pending_token = forms.BooleanField(label="Discard the pending replacement", required=False)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountCredentialsForm
    list_display = ("name", "slug", "timezone", "auto_scaling_available", "created")
    list_filter = ("auto_scaling_available",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created", "carrier_auth_token_status")
    inlines = [MembershipInline]

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> Any:
        carrier: tuple[str, ...] = ("carrier_account_sid", "carrier_auth_token_status")
        if self._may_replace_credentials(request):
            carrier = (*carrier, *TOKEN_FIELDS)
        return (
            (None, {"fields": ("name", "slug", "timezone", "created")}),
            ("RingPool Auto-Scaling", {"fields": ("auto_scaling_available",)}),
            ("Carrier", {"fields": carrier}),
        )

    def get_form(
        self, request: HttpRequest, obj: Account | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        # Without the permission the form has no token fields at all, so no POST can replace it.
        kwargs["form"] = AccountCredentialsForm if self._may_replace_credentials(request) else AccountForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> Any:
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and not self._may_replace_credentials(request):
            readonly.append("carrier_account_sid")
        return readonly

    @method_decorator(sensitive_post_parameters(*TOKEN_FIELDS))
    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Account, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        data = form.cleaned_data
        if data.get("new_carrier_auth_token"):
            account_carrier_token_replace(
                account=obj,
                token=data["new_carrier_auth_token"],
                actor=signed_in_user(request),
                immediately=bool(data.get("token_in_force_at_once")),
            )
        elif data.get("discard_pending_token"):
            account_carrier_token_discard_pending(account=obj, actor=signed_in_user(request))

    @staticmethod
    def _may_replace_credentials(request: HttpRequest) -> bool:
        return request.user.has_perm(CREDENTIALS_PERMISSION)

    @admin.display(ordering="created_at", description="created")
    def created(self, account: Account) -> str:
        return local_time(account.created_at, account.timezone)

    @admin.display(description="carrier auth token")
    def carrier_auth_token_status(self, account: Account) -> str:
        # Says whether a token is set and when it changed; never a character of it.
        if not account.has_carrier_auth_token:
            return "not set: call webhooks for this account's numbers are refused"
        return format_html(
            "set{}{}",
            format_html(", changed {}", local_time(account.carrier_auth_token_changed_at, account.timezone))
            if account.carrier_auth_token_changed_at
            else "",
            "; a replacement is pending until the first webhook signed with it"
            if account.carrier_auth_token_next_encrypted
            else "",
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "account", "role", "created")
    list_filter = ("role",)
    list_select_related = ("user", "account")
    raw_id_fields = ("user", "account")
    search_fields = ("user__username", "user__email", "account__name")

    @admin.display(ordering="created_at", description="created")
    def created(self, membership: Membership) -> str:
        return local_time(membership.created_at, membership.account.timezone)
