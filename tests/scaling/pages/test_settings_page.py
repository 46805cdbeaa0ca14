"""Settings → Network → RingPool Auto-Scaling: who may see and change it, what saving does and refuses."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.access import SESSION_KEY
from accounts.choices import Role
from config.history import history_by
from ringpools.choices import OverflowMode
from scaling.choices import ScalingPolicy, Scope
from scaling.models import AutoScalingSettings
from scaling.services import auto_scaling_settings_for, ringpool_create
from tests import factories

pytestmark = pytest.mark.django_db
PAGE = "/settings/network/ringpool-auto-scaling/"


@pytest.fixture
def acme():
    account = factories.AccountFactory(name="Acme")
    spring = factories.CampaignFactory(account=account, name="Spring Sale")
    roofing = factories.CampaignFactory(account=account, name="Roofing Leads")
    desk = factories.DestinationNumberFactory(account=account, label="Front desk")
    factories.RingPoolFactory(account=account, campaign=spring, destination_number=desk, name="Spring pool")
    factories.RingPoolFactory(account=account, campaign=roofing, destination_number=desk, name="Roof pool")
    auto_scaling_settings_for(account)
    return account


@pytest.fixture
def other():
    account = factories.AccountFactory(name="Globex")
    campaign = factories.CampaignFactory(account=account, name="Globex campaign")
    destination = factories.DestinationNumberFactory(account=account, label="Globex desk")
    pool = factories.RingPoolFactory(account=account, campaign=campaign, destination_number=destination)
    return account, campaign, destination, pool


def person(account, role: str, username: str, **extra):
    user = factories.UserFactory(username=username, first_name=username.capitalize(), **extra)
    factories.MembershipFactory(user=user, account=account, role=role)
    return user


def signed_in(user, **client_args) -> Client:
    client = Client(**client_args)
    client.force_login(user)
    return client


def form_data(client: Client, **changes) -> dict:
    """The page's form as the browser would post it, after `changes`."""
    page = client.get(PAGE)
    form = page.context["form"]
    data = {
        "account": str(page.context["access"].account.pk),
        "seen_updated_at": form["seen_updated_at"].value(),
        "scope": form["scope"].value(),
        "campaigns": [str(c.pk) for c in form.initial["campaigns"]],
        "destination_numbers": [str(d.pk) for d in form.initial["destination_numbers"]],
    }
    if form.initial["enable_for_new_pools"]:
        data["enable_for_new_pools"] = "on"
    if form.initial["include_overflow_number"]:
        data["include_overflow_number"] = "on"
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def snapshot(account) -> tuple:
    settings = AutoScalingSettings.objects.get(account=account)
    return (
        settings.enable_for_new_pools,
        settings.include_overflow_number,
        settings.scope,
        sorted(settings.campaigns.values_list("name", flat=True)),
        sorted(settings.destination_numbers.values_list("label", flat=True)),
        settings.history.count(),
    )


def test_a_super_user_narrows_the_scope_and_sees_what_changed(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    spring = acme.campaigns.get(name="Spring Sale")
    response = alice.post(
        PAGE, form_data(alice, scope=Scope.SELECTED_CAMPAIGNS, campaigns=[str(spring.pk)]), follow=True
    )
    assert response.redirect_chain[-1] == (PAGE, 302)
    text = response.content.decode()
    assert "Saved. Scope: All campaigns → Only selected campaigns" in text
    assert "Selected campaigns: none → Spring Sale" in text
    assert snapshot(acme)[2:4] == (Scope.SELECTED_CAMPAIGNS, ["Spring Sale"])
    # The pool of the campaign switched off now says why it does not scale, in the admin's words.
    roof = next(
        row for row in response.context["campaign_rows"] if row["switch"].choice_label == "Roofing Leads"
    )
    assert roof["pools"][0]["verdict"].reason == "campaign outside the account's scope"
    assert "Campaign outside the account&#x27;s scope" in text


def test_turning_a_campaign_switch_off_under_all_campaigns_narrows_the_scope(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    spring = acme.campaigns.get(name="Spring Sale")
    response = alice.post(PAGE, form_data(alice, campaigns=[str(spring.pk)]), follow=True)
    assert snapshot(acme)[2:4] == (Scope.SELECTED_CAMPAIGNS, ["Spring Sale"])
    assert "a campaign was switched off" in response.content.decode()


def test_saving_the_page_unchanged_changes_nothing(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    before = snapshot(acme)
    response = alice.post(PAGE, form_data(alice), follow=True)
    assert "Nothing to save" in response.content.decode()
    assert snapshot(acme) == before


def test_new_pools_inherit_the_saved_defaults(acme):
    alice_user = person(acme, Role.SUPER_USER, "alice")
    alice = signed_in(alice_user)
    alice.post(PAGE, form_data(alice, enable_for_new_pools=None, include_overflow_number=None))
    pool = ringpool_create(
        account=acme,
        campaign=acme.campaigns.first(),
        destination_number=acme.destination_numbers.first(),
        name="Made after the change",
    )
    assert pool.auto_scaling_enabled is False
    assert pool.overflow_mode == OverflowMode.DESTINATION_NUMBER
    assert pool.overflow_number is None


def test_the_history_shows_who_changed_what_newest_first(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    alice.post(PAGE, form_data(alice, include_overflow_number=None))
    desk = acme.destination_numbers.get()
    alice.post(PAGE, form_data(alice, scope=Scope.SELECTED_DESTINATIONS, destination_numbers=[str(desk.pk)]))
    history = alice.get(PAGE).context["history"]
    assert [entry.who_name for entry in history[:2]] == ["Alice", "Alice"]
    newest, older = history[0], history[1]
    assert newest.when >= older.when
    assert [(c.label, c.before, c.after) for c in newest.changes] == [
        ("Scope", "All campaigns", "Only selected destination numbers"),
        ("Selected destination numbers", "none", f"Front desk {desk.number.as_national}"),
    ]
    assert [(c.label, c.before, c.after) for c in older.changes] == [
        ("Include an overflow number in each new RingPool", "on", "off")
    ]
    assert history[-1].created


@pytest.mark.parametrize("role", [Role.MANAGER, Role.MEMBER])
def test_managers_and_members_see_the_page_read_only_and_cannot_post(acme, role):
    reader = signed_in(person(acme, role, "reader"))
    page = reader.get(PAGE)
    text = page.content.decode()
    assert page.status_code == 200
    assert "Read-only." in text and "only super users of Acme can change them" in text
    assert '<fieldset class="plain" disabled>' in text and "Save settings" not in text
    before = snapshot(acme)
    refused = reader.post(PAGE, form_data(reader, scope=Scope.SELECTED_CAMPAIGNS))
    assert refused.status_code == 403
    assert "Only the account&#x27;s super users change these settings." in refused.content.decode()
    assert snapshot(acme) == before


def test_staff_may_view_any_account_but_change_nothing(acme):
    sam = signed_in(factories.StaffFactory(username="sam"))
    sam.post(reverse("account-switch"), {"account": acme.pk})
    page = sam.get(PAGE)
    assert page.status_code == 200 and page.context["access"].account == acme
    assert "Read-only." in page.content.decode()
    before = snapshot(acme)
    assert sam.post(PAGE, form_data(sam, scope=Scope.SELECTED_CAMPAIGNS)).status_code == 403
    assert snapshot(acme) == before


def test_a_campaign_of_another_account_is_refused_and_changes_nothing(acme, other):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    _, foreign_campaign, _, _ = other
    before = snapshot(acme)
    response = alice.post(
        PAGE, form_data(alice, scope=Scope.SELECTED_CAMPAIGNS, campaigns=[str(foreign_campaign.pk)])
    )
    assert response.status_code == 400
    assert f"{foreign_campaign.pk} is not one of this account&#x27;s campaigns. Nothing was changed." in (
        response.content.decode()
    )
    assert snapshot(acme) == before
    # Exactly as for an id that exists nowhere: the answer does not tell that Globex's campaign exists.
    missing = alice.post(PAGE, form_data(alice, scope=Scope.SELECTED_CAMPAIGNS, campaigns=["999999"]))
    assert missing.status_code == 400
    assert (
        "999999 is not one of this account&#x27;s campaigns. Nothing was changed." in missing.content.decode()
    )


def test_a_destination_number_of_another_account_is_refused_and_changes_nothing(acme, other):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    _, _, foreign_destination, _ = other
    before = snapshot(acme)
    response = alice.post(
        PAGE,
        form_data(
            alice, scope=Scope.SELECTED_DESTINATIONS, destination_numbers=[str(foreign_destination.pk)]
        ),
    )
    assert response.status_code == 400
    assert "is not one of this account&#x27;s destination numbers" in response.content.decode()
    assert snapshot(acme) == before


def test_a_forged_account_in_the_switcher_is_a_404_and_keeps_the_session(acme, other):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    alice.get(PAGE)
    globex, _, _, _ = other
    assert alice.post(reverse("account-switch"), {"account": globex.pk}).status_code == 404
    assert alice.session[SESSION_KEY] == acme.pk
    assert alice.get(PAGE).context["access"].account == acme


def test_a_forged_session_value_falls_back_to_the_persons_own_account(acme, other):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    session = alice.session
    session[SESSION_KEY] = other[0].pk
    session.save()
    page = alice.get(PAGE)
    assert page.context["access"].account == acme
    assert "Globex" not in page.content.decode()


def test_another_accounts_pool_health_page_is_a_404(acme, other):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    _, _, _, foreign_pool = other
    assert alice.get(reverse("pool-health", args=[foreign_pool.pk])).status_code == 404
    own = acme.ringpools.first()
    assert alice.get(reverse("pool-health", args=[own.pk])).status_code == 200


def test_a_form_drawn_for_one_account_is_not_applied_to_the_account_switched_to(acme, other):
    globex = other[0]
    auto_scaling_settings_for(globex)
    alice_user = person(acme, Role.SUPER_USER, "alice")
    factories.MembershipFactory(user=alice_user, account=globex, role=Role.SUPER_USER)
    alice = signed_in(alice_user)
    alice.post(reverse("account-switch"), {"account": acme.pk})
    acme_form = form_data(alice, include_overflow_number=None)
    alice.post(reverse("account-switch"), {"account": globex.pk})  # in another tab
    before = (snapshot(acme), snapshot(globex))
    response = alice.post(PAGE, acme_form)
    assert response.status_code == 409
    assert "This form was opened for another account; you are now looking at Globex." in (
        response.content.decode()
    )
    assert (snapshot(acme), snapshot(globex)) == before


def test_a_person_in_two_accounts_switches_and_edits_only_where_they_are_super_user(acme, other):
    globex = other[0]
    alice_user = person(acme, Role.SUPER_USER, "alice")
    factories.MembershipFactory(user=alice_user, account=globex, role=Role.MEMBER)
    alice = signed_in(alice_user)
    alice.post(reverse("account-switch"), {"account": globex.pk})
    page = alice.get(PAGE)
    assert page.context["access"].account == globex and not page.context["access"].can_edit
    before = snapshot(globex)
    assert alice.post(PAGE, form_data(alice, scope=Scope.SELECTED_CAMPAIGNS)).status_code == 403
    assert snapshot(globex) == before


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        (Scope.SELECTED_CAMPAIGNS, "Select at least one campaign, or choose all campaigns."),
        (Scope.SELECTED_DESTINATIONS, "Select at least one destination number, or choose another scope."),
    ],
)
def test_a_selective_scope_with_nothing_selected_is_refused(acme, scope, message):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    before = snapshot(acme)
    response = alice.post(PAGE, form_data(alice, scope=scope, campaigns=[], destination_numbers=[]))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert snapshot(acme) == before


def test_an_unknown_scope_is_refused(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    before = snapshot(acme)
    response = alice.post(PAGE, form_data(alice, scope="everything"))
    assert response.status_code == 400
    assert (
        "Select a valid choice. everything is not one of the available choices." in response.content.decode()
    )
    assert snapshot(acme) == before


def test_a_form_without_its_timestamp_is_refused(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    before = snapshot(acme)
    response = alice.post(PAGE, form_data(alice, seen_updated_at=None, include_overflow_number=None))
    assert response.status_code == 400
    assert "This form is damaged; reload the page." in response.content.decode()
    assert snapshot(acme) == before


def test_a_stale_form_is_refused_after_someone_else_saved(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    bob = signed_in(person(acme, Role.SUPER_USER, "bob"))
    alices_form = form_data(alice, include_overflow_number=None)
    bob.post(PAGE, form_data(bob, scope=Scope.SELECTED_CAMPAIGNS, campaigns=[str(acme.campaigns.first().pk)]))
    after_bob = snapshot(acme)
    response = alice.post(PAGE, alices_form)
    assert response.status_code == 409
    assert "Someone else saved these settings after you opened the page. Nothing was changed" in (
        response.content.decode()
    )
    assert snapshot(acme) == after_bob
    # The page she gets back shows Bob's change, ready to be redone on top of it.
    assert response.context["form"].initial["scope"] == Scope.SELECTED_CAMPAIGNS


def test_an_account_without_the_feature_has_no_page_and_says_whom_to_ask(acme):
    acme.auto_scaling_available = False
    acme.save()
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    index = alice.get(reverse("settings-index")).content.decode()
    assert PAGE not in index
    assert "contact your account manager" in index
    page = alice.get(PAGE)
    assert page.status_code == 404 and "contact your account manager" in page.content.decode()
    assert alice.post(PAGE, {"scope": Scope.SELECTED_CAMPAIGNS}).status_code == 404


def test_the_settings_page_lists_the_feature_in_the_network_section(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    index = alice.get(reverse("settings-index")).content.decode()
    network = index[index.index("Network") :]
    assert f'<a href="{PAGE}">RingPool Auto-Scaling</a>' in network


def test_the_form_is_refused_without_its_csrf_token(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"), enforce_csrf_checks=True)
    data = form_data(alice, scope=Scope.SELECTED_CAMPAIGNS, campaigns=[str(acme.campaigns.first().pk)])
    before = snapshot(acme)
    response = alice.post(PAGE, data)
    assert response.status_code == 403 and b"CSRF" in response.content
    assert snapshot(acme) == before
    # The same post with the page's token goes through: the refusal was the token's.
    data["csrfmiddlewaretoken"] = alice.get(PAGE).context["csrf_token"]
    assert alice.post(PAGE, data).status_code == 302
    assert snapshot(acme)[2] == Scope.SELECTED_CAMPAIGNS


@pytest.mark.parametrize("url", [PAGE, "/settings/", "/pools/"])
def test_every_page_asks_strangers_to_sign_in(url):
    response = Client().get(url)
    assert response.status_code == 302 and response["Location"].startswith("/account/sign-in/?next=")


def test_a_person_without_any_account_is_told_so(db):
    loner = signed_in(factories.UserFactory(username="loner"))
    response = loner.get(PAGE)
    assert response.status_code == 403 and "not a member of any account" in response.content.decode()


def test_staff_find_the_same_history_in_admin(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    alice.post(PAGE, form_data(alice, include_overflow_number=None))
    sam = signed_in(factories.StaffFactory(username="sam"))
    settings = AutoScalingSettings.objects.get(account=acme)
    page = sam.get(reverse("admin:scaling_autoscalingsettings_history", args=[settings.pk]))
    assert page.status_code == 200
    newest = page.context["page_obj"].object_list[0]
    assert newest.history_user.username == "alice" and newest.include_overflow_number is False
    text = page.content.decode()
    assert "alice" in text and "Include an overflow number in each new RingPool" in text


def test_the_page_takes_as_many_queries_for_many_campaigns_and_changes_as_for_few(acme):
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    alice.get(PAGE)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alice.get(PAGE).status_code == 200
        return len(captured)

    few = queries()
    for n in range(8):
        campaign = factories.CampaignFactory(account=acme, name=f"Extra {n}")
        factories.RingPoolFactory(
            account=acme, campaign=campaign, destination_number=acme.destination_numbers.get()
        )
        alice.post(PAGE, form_data(alice, include_overflow_number=None if n % 2 == 0 else "on"))
    assert queries() == few


def test_the_customer_sees_when_staff_switched_the_scaling_policy(acme):
    settings = AutoScalingSettings.objects.get(account=acme)
    history_by(settings, factories.StaffFactory(first_name="Sam"))
    settings.policy = ScalingPolicy.ADAPTIVE
    settings.save()
    alice = signed_in(person(acme, Role.SUPER_USER, "alice"))
    newest = alice.get(PAGE).context["history"][0]
    assert [(c.label, c.before, c.after) for c in newest.changes] == [
        ("Scaling policy (set by RingPool staff)", "The seed's rule", "Adaptive")
    ]
