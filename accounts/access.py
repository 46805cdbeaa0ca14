"""Which account a signed-in person is looking at, and what they may do there.

The chosen account lives in the session, but it is only a preference: every request re-checks it
against the person's memberships (account managers may look at any account), so neither a stale session nor a
forged form value opens another account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Account, Membership, User

SESSION_KEY = "ringpool_account_id"


@dataclass(frozen=True)
class AccountAccess:
    account: Account
    role: str | None  # the person's role in the account; None for an account manager looking in

    @property
    def can_edit(self) -> bool:
        """Only the account's own super users change anything (SPEC §5); staff and others read."""
        return self.role == Role.SUPER_USER

    @property
    def role_label(self) -> str:
        return Role(self.role).label if self.role else "Account manager (read-only)"


CUSTOMER_AREA_PERMISSION = "accounts.open_customer_area"


def opens_every_account(user: User) -> bool:
    """Staff with the account managers' role (or a superuser) read every account's customer pages;
    other staff (a view-only back-office login, say) only the accounts they are members of."""
    return user.is_active and user.is_staff and user.has_perm(CUSTOMER_AREA_PERMISSION)


def accounts_of(user: User) -> QuerySet[Account]:
    """The accounts a person may open: their memberships, or every account for account managers."""
    if opens_every_account(user):
        return Account.objects.all()
    return Account.objects.filter(memberships__user=user)


def access_to(user: User, account_id: Any) -> AccountAccess | None:
    """The person's access to one account, or None when they have none (the caller answers 404)."""
    try:
        account_id = int(account_id)
    except (TypeError, ValueError):
        return None
    membership = Membership.objects.select_related("account").filter(user=user, account_id=account_id).first()
    if membership is not None:
        return AccountAccess(account=membership.account, role=membership.role)
    if opens_every_account(user):
        account = Account.objects.filter(pk=account_id).first()
        return AccountAccess(account=account, role=None) if account else None
    return None


def signed_in_user(request: HttpRequest) -> User | None:
    """The person signed in, or None for an anonymous visitor."""
    return request.user if isinstance(request.user, User) else None


def current_access(request: HttpRequest) -> AccountAccess | None:
    """The account chosen in the session if the person still has access to it, else their first one."""
    user = signed_in_user(request)
    if user is None:
        return None
    chosen = request.session.get(SESSION_KEY)
    if chosen is not None:
        access = access_to(user, chosen)
        if access is not None:
            return access
    first = accounts_of(user).order_by("name", "pk").values_list("pk", flat=True).first()
    if first is None:
        return None
    request.session[SESSION_KEY] = first
    return access_to(user, first)


class AccountRequest(HttpRequest):
    """What an `account_view` receives: a signed-in person and the account they are looking at."""

    user: User  # narrower than HttpRequest's: account_view lets no one else in
    access: AccountAccess


def account_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A customer-area view: signed in, with an account; `request.access` says which and how."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        access = current_access(request)
        if access is None:
            return render(request, "account/no_account.html", status=403)
        cast(AccountRequest, request).access = access
        # Times on these pages read in the account's zone, as its month end does.
        with timezone.override(access.account.timezone):
            return view(request, *args, **kwargs)

    return wrapper
