"""Who sees which account's customer pages, and who changes anything: every page and form of the
customer area, for every kind of person (SPEC §5). Staff read customers' pages only with the account
managers' role; the account switcher offers only accounts one may open."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.choices import Role
from accounts.roles import ACCOUNT_MANAGERS, roles_register
from ringpools.models import Campaign
from scaling.models import AutoScalingSettings
from scaling.services import auto_scaling_settings_for
from tests import factories

pytestmark = pytest.mark.django_db
SETTINGS_PAGE = "/settings/network/ringpool-auto-scaling/"
PEOPLE = (
    "anonymous",
    "member",
    "manager",
    "super_user",
    "foreign_super_user",
    "view_only_staff",
    "account_manager",
)


@pytest.fixture
def world():
    roles_register()
    acme, globex = factories.AccountFactory(name="Acme"), factories.AccountFactory(name="Globex")
    pools = {account.name: factories.RingPoolFactory(account=account) for account in (acme, globex)}
    for account in (acme, globex):
        auto_scaling_settings_for(account)

    def member(username: str, account, role: str):
        user = factories.UserFactory(username=username)
        factories.MembershipFactory(user=user, account=account, role=role)
        return user

    viewer = factories.UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ringpool"))
    manager_staff = factories.UserFactory(username="sam", is_staff=True)
    manager_staff.groups.add(Group.objects.get(name=ACCOUNT_MANAGERS.group))
    people = {
        "member": member("mia", acme, Role.MEMBER),
        "manager": member("manny", acme, Role.MANAGER),
        "super_user": member("alice", acme, Role.SUPER_USER),
        "foreign_super_user": member("gus", globex, Role.SUPER_USER),
        "view_only_staff": viewer,
        "account_manager": manager_staff,
    }
    return SimpleNamespace(acme=acme, globex=globex, pools=pools, people=people)


def client_of(people: dict, who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(people[who])
    return client


def settings_post(account) -> dict[str, str]:
    """The settings form with "auto-scaling for new pools" turned the other way."""
    current = AutoScalingSettings.objects.get(account=account)
    data = {
        "account": str(account.pk),
        "seen_updated_at": current.updated_at.isoformat(),
        "scope": current.scope,
    }
    data["campaigns"] = [
        str(pk) for pk in Campaign.objects.filter(account=account).values_list("pk", flat=True)
    ]
    if not current.enable_for_new_pools:
        data["enable_for_new_pools"] = "on"
    return data


# What each person gets on Acme's pages after asking to look at Acme: the page, "not allowed", or
# sent to sign in. Those who cannot open Acme are never shown it.
READS = {
    "anonymous": "sign_in",
    "member": "acme",
    "manager": "acme",
    "super_user": "acme",
    "foreign_super_user": "globex",  # the switch to Acme is refused: they stay on their own account
    "view_only_staff": "no_account",
    "account_manager": "acme",
}


@pytest.mark.parametrize("who", PEOPLE)
def test_every_customer_page_for_every_person(world, who):
    client = client_of(world.people, who)
    switch = client.post("/account/switch/", {"account": world.acme.pk})
    may_open_acme = READS[who] == "acme"
    assert switch.status_code == (302 if may_open_acme or who == "anonymous" else 404)
    acme_pool = world.pools["Acme"].pk
    for path in ("/settings/", SETTINGS_PAGE, "/pools/", f"/pools/{acme_pool}/health/"):
        response = client.get(path)
        expected = READS[who]
        if expected == "sign_in":
            assert response.status_code == 302 and response["Location"].startswith("/account/sign-in/"), path
        elif expected == "no_account":
            assert response.status_code == 403, path
            assert "Acme" not in response.content.decode()
        elif expected == "globex":
            body = response.content.decode()
            if path.startswith("/pools/") and path.endswith("/health/"):
                assert response.status_code == 404, path  # Acme's pool does not exist for them
            else:
                assert response.status_code == 200 and "Globex" in body, path
            assert "Acme" not in body, path
        else:
            assert response.status_code == 200 and "Acme" in response.content.decode(), path


@pytest.mark.parametrize("who", PEOPLE)
def test_only_the_accounts_own_super_user_changes_its_settings(world, who):
    client = client_of(world.people, who)
    client.post("/account/switch/", {"account": world.acme.pk})
    before = AutoScalingSettings.objects.get(account=world.acme).enable_for_new_pools
    response = client.post(SETTINGS_PAGE, settings_post(world.acme))
    after = AutoScalingSettings.objects.get(account=world.acme).enable_for_new_pools
    expected = {
        "anonymous": 302,  # to sign in
        "member": 403,
        "manager": 403,
        "super_user": 302,  # saved, back to the page
        "foreign_super_user": 409,  # the form names Acme; they look at Globex: nothing is applied
        "view_only_staff": 403,
        "account_manager": 403,
    }[who]
    assert response.status_code == expected
    assert (after != before) == (who == "super_user")


@pytest.mark.parametrize(
    "who", ["member", "super_user", "foreign_super_user", "view_only_staff", "account_manager"]
)
def test_the_account_switcher_offers_only_accounts_one_may_open(world, who):
    page = client_of(world.people, who).get("/settings/")
    offered = {a.name for a in page.context["switch_accounts"]} if page.status_code == 200 else set()
    assert (
        offered
        == {
            "member": {"Acme"},
            "super_user": {"Acme"},
            "foreign_super_user": {"Globex"},
            "view_only_staff": set(),
            "account_manager": {"Acme", "Globex"},
        }[who]
    )


def test_an_account_manager_is_told_they_read_only(world):
    client = client_of(world.people, "account_manager")
    client.post("/account/switch/", {"account": world.globex.pk})
    page = client.get(SETTINGS_PAGE).content.decode()
    assert "Account manager (read-only) of Globex" in page
