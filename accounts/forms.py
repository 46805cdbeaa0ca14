from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.access import accounts_of
from accounts.models import Account, User


class SignInForm(AuthenticationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autofocus=True)
        self.fields["password"].widget.attrs.update(autocomplete="current-password")


class AccountSwitchForm(forms.Form):
    """Choose the account to look at; only accounts the person may open are valid choices."""

    account = forms.ModelChoiceField(queryset=Account.objects.none(), empty_label=None, label="Account")

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["account"]).queryset = accounts_of(user).order_by(
            "name", "pk"
        )
