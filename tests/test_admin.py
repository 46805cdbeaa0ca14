"""The back office: every model's admin pages render for staff, stay closed to others, and stay cheap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, Membership, User
from accounts.roles import ACCOUNT_MANAGERS
from ringpools.models import (
    Call,
    Campaign,
    DestinationNumber,
    Lease,
    PoolHourlyFigures,
    PromoNumber,
    RingPool,
)
from scaling.models import AutoScalingSettings, InventoryNumber, ScalingEvent
from tests import factories

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 29, 5, 30, tzinfo=UTC)

MODELS = {
    "accounts.user": lambda: factories.UserFactory(),
    "accounts.account": lambda: factories.AccountFactory(),
    "accounts.membership": lambda: factories.MembershipFactory(),
    "ringpools.campaign": lambda: factories.CampaignFactory(),
    "ringpools.destinationnumber": lambda: factories.DestinationNumberFactory(),
    "ringpools.ringpool": lambda: factories.RingPoolFactory(),
    "ringpools.promonumber": lambda: factories.PromoNumberFactory(),
    "ringpools.lease": lambda: factories.LeaseFactory(),
    "ringpools.call": lambda: factories.CallFactory(),
    "ringpools.poolhourlyfigures": lambda: factories.PoolHourlyFiguresFactory(),
    "scaling.autoscalingsettings": lambda: factories.AutoScalingSettingsFactory(),
    "scaling.scalingevent": lambda: factories.ScalingEventFactory(),
    "scaling.inventorynumber": lambda: factories.InventoryNumberFactory(),
}
READ_ONLY = {
    "scaling.scalingevent",
    "ringpools.call",
    "ringpools.poolhourlyfigures",
    "ringpools.lease",
    "ringpools.promonumber",
}


@pytest.fixture
def staff(client):
    user = factories.StaffFactory(username="sam")
    client.force_login(user)
    return user


def url(label: str, view: str, *args) -> str:
    app, model = label.split(".")
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def test_every_model_of_the_domain_is_in_admin():
    registered = {f"{m._meta.app_label}.{m._meta.model_name}" for m in admin.site._registry}
    assert set(MODELS) <= registered
    assert {"django_celery_beat.periodictask", "django_celery_beat.crontabschedule"} <= registered


@pytest.mark.parametrize("label", sorted(MODELS))
def test_staff_can_list_search_and_open_every_model(client, staff, label):
    obj = MODELS[label]()
    listing = client.get(url(label, "changelist"))
    assert listing.status_code == 200
    assert url(label, "change", obj.pk) in listing.content.decode()
    assert client.get(url(label, "changelist"), {"q": "805"}).status_code == 200
    assert client.get(url(label, "change", obj.pk)).status_code == 200
    add = client.get(url(label, "add"))
    assert add.status_code == (403 if label in READ_ONLY else 200)


@pytest.mark.parametrize("label", sorted(MODELS))
def test_people_who_are_not_staff_are_refused(client, label):
    customer = factories.MembershipFactory(role="super_user").user
    client.force_login(customer)
    response = client.get(url(label, "changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_scaling_events_cannot_be_added_changed_or_deleted(client, staff):
    event = factories.ScalingEventFactory()
    assert client.get(url("scaling.scalingevent", "add")).status_code == 403
    assert (
        client.post(url("scaling.scalingevent", "change", event.pk), {"reason": "edited"}).status_code == 403
    )
    assert client.post(url("scaling.scalingevent", "delete", event.pk), {"post": "yes"}).status_code == 403
    assert ScalingEvent.objects.get(pk=event.pk).reason == "test"


@pytest.mark.parametrize(
    "typed", ["(805) 555-0123", "805.555.0123", "+18055550123", "8055550123", "555-0123"]
)
def test_a_number_is_found_however_it_is_typed(client, staff, typed):
    factories.PromoNumberFactory(number="+18055550123")
    factories.PromoNumberFactory(number="+14155550188")
    page = client.get(url("ringpools.promonumber", "changelist"), {"q": typed}).content.decode()
    assert "(805) 555-0123" in page or "+18055550123" in page
    assert "555-0188" not in page and "+14155550188" not in page


def test_the_pool_list_shows_size_leases_overflows_and_auto_scaling(client, staff):
    pool = factories.RingPoolFactory(name="Spring Sale Pool")
    for _ in range(3):
        factories.PromoNumberFactory(pool=pool)
    lease = factories.LeaseFactory(number=factories.PromoNumberFactory(pool=pool))
    PromoNumber.objects.filter(pk=lease.number_id).update(
        busy_until=lease.expires_at
    )  # what the hand-out does
    factories.PoolHourlyFiguresFactory(pool=pool, overflows=7, shard=1)
    factories.PoolHourlyFiguresFactory(pool=pool, overflows=5, shard=2)
    factories.ScalingEventFactory(pool=pool, kind="number_added")
    page = client.get(url("ringpools.ringpool", "changelist")).content.decode()
    row = page[page.index("Spring Sale Pool") :]
    row = row[: row.index("</tr>")]
    cells = [c.split(">")[-1] for c in row.split("</td>")]
    assert "4" in cells  # size
    assert "1" in cells  # leased now
    assert "12" in cells  # overflows in 24 h
    assert ">on<" in row and "Number added" in row


def test_the_pool_list_says_why_auto_scaling_is_off(client, staff):
    settings = factories.AutoScalingSettingsFactory(scope="campaigns")
    factories.RingPoolFactory(account=settings.account, name="Outside scope")
    factories.RingPoolFactory(name="Switched off", auto_scaling_enabled=False)
    page = client.get(url("ringpools.ringpool", "changelist")).content.decode()
    assert "campaign outside the account&#x27;s scope" in page
    assert "turned off for this pool" in page


def test_the_pool_list_runs_a_bounded_number_of_queries(client, staff, django_assert_max_num_queries):
    def pools(n: int) -> None:
        for _ in range(n):
            pool = factories.RingPoolFactory()
            factories.AutoScalingSettingsFactory(account=pool.account, scope="destinations")
            factories.PromoNumberFactory(pool=pool)
            factories.ScalingEventFactory(pool=pool)

    pools(3)
    with django_assert_max_num_queries(12) as few:
        client.get(url("ringpools.ringpool", "changelist"))
    pools(40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(url("ringpools.ringpool", "changelist")).status_code == 200
    assert RingPool.objects.count() == 43


@pytest.mark.parametrize(
    "label", ["ringpools.promonumber", "ringpools.lease", "ringpools.call", "scaling.scalingevent"]
)
def test_other_big_lists_run_a_bounded_number_of_queries(client, staff, label, django_assert_max_num_queries):
    for _ in range(3):
        MODELS[label]()
    with django_assert_max_num_queries(12) as few:
        client.get(url(label, "changelist"))
    for _ in range(30):
        MODELS[label]()
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(url(label, "changelist"))


def pool_form(pool_fields: dict) -> dict:
    return {
        "lease_seconds": 1800,
        "min_size": 1,
        "max_size": 50,
        "is_active": "on",
        "allowed_origins": "[]",
        "number_type": "local",
        "area_code": "805",
        "region": "",
        "overflow_mode": "overflow_number",
        **pool_fields,
    }


def test_a_pool_added_in_admin_takes_the_account_defaults_and_is_audited(client, staff):
    account = factories.AccountFactory()
    factories.AutoScalingSettingsFactory(
        account=account, enable_for_new_pools=False, include_overflow_number=False
    )
    campaign = factories.CampaignFactory(account=account)
    destination = factories.DestinationNumberFactory(account=account)
    response = client.post(
        url("ringpools.ringpool", "add"),
        pool_form(
            {
                "account": account.pk,
                "campaign": campaign.pk,
                "destination_number": destination.pk,
                "name": "From admin",
                "auto_scaling_enabled": "on",
            }
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    pool = RingPool.objects.get(name="From admin")
    assert pool.auto_scaling_enabled is False and pool.overflow_mode == "destination_number"
    event = ScalingEvent.objects.get(pool=pool, kind="pool_created")
    assert event.actor == staff


def test_a_pool_with_another_accounts_campaign_is_refused_in_admin(client, staff):
    account = factories.AccountFactory()
    response = client.post(
        url("ringpools.ringpool", "add"),
        pool_form(
            {
                "account": account.pk,
                "campaign": factories.CampaignFactory().pk,
                "destination_number": factories.DestinationNumberFactory(account=account).pk,
                "name": "Mixed",
            }
        ),
    )
    assert response.status_code == 200 and "must belong to the pool" in response.content.decode()
    assert not RingPool.objects.filter(name="Mixed").exists()


def test_changing_a_pool_in_admin_records_who_and_what(client, staff):
    pool = factories.RingPoolFactory(max_size=50)
    data = pool_form(
        {
            "account": pool.account_id,
            "campaign": pool.campaign_id,
            "destination_number": pool.destination_number_id,
            "name": pool.name,
            "max_size": 75,
            "auto_scaling_enabled": "on",
            "allowed_origins": '["https://www.example.com"]',
        }
    )
    assert client.post(url("ringpools.ringpool", "change", pool.pk), data).status_code == 302
    event = ScalingEvent.objects.get(pool=pool, kind="settings_changed")
    assert event.actor == staff and event.figures == {"max_size": {"before": 50, "after": 75}}


@pytest.mark.postgres
def test_huge_unfiltered_lists_are_counted_from_the_estimate_not_count_star(
    client, staff, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from ringpools.models import PoolHourlyFigures

    pool = factories.RingPoolFactory()
    hour = factories.PoolHourlyFiguresFactory.build().hour
    PoolHourlyFigures.objects.bulk_create(
        PoolHourlyFigures(pool=pool, hour=hour - timezone.timedelta(hours=i), presentations=1)
        for i in range(10_050)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ringpools_poolhourlyfigures")
    with CaptureQueriesContext(connection) as queries:
        page = client.get(url("ringpools.poolhourlyfigures", "changelist"))
    assert page.status_code == 200
    assert not [q for q in queries.captured_queries if "COUNT(*)" in q["sql"].upper()]
    with CaptureQueriesContext(connection) as queries:
        client.get(url("ringpools.poolhourlyfigures", "changelist"), {"q": pool.name})
    assert [q for q in queries.captured_queries if "COUNT(*)" in q["sql"].upper()]  # filtered: exact count


# --- the account-manager role, read-only facts, bounded pages with thousands of rows -----------------

FACTS = ("ringpools.lease", "ringpools.call", "ringpools.poolhourlyfigures", "scaling.scalingevent")
THOUSANDS = 2000


@pytest.fixture
def superuser():
    return factories.StaffFactory(username="root")


@pytest.fixture
def manager():
    user = factories.UserFactory(username="manny", is_staff=True)
    user.groups.add(Group.objects.get(name=ACCOUNT_MANAGERS.group))
    return user


def _numbers(pool: RingPool, n: int, prefix: str = "+1213") -> list[PromoNumber]:
    return PromoNumber.objects.bulk_create(
        PromoNumber(
            account_id=pool.account_id,
            pool=pool,
            number=f"{prefix}{5000000 + i:07d}",
            number_type="local",
            area_code=prefix[2:],
            acquired_at=NOW,
            monthly_cost="1.00",
        )
        for i in range(n)
    )


def _bulk(label: str, n: int) -> None:
    """n more rows of the model, made in bulk (factories row by row would take minutes)."""
    pool = factories.RingPoolFactory()
    account = pool.account
    if label == "accounts.user":
        User.objects.bulk_create(User(username=f"bulk{i}") for i in range(n))
    elif label == "accounts.account":
        Account.objects.bulk_create(Account(name=f"Bulk {i}", slug=f"bulk-{i}") for i in range(n))
    elif label == "accounts.membership":
        users = User.objects.bulk_create(User(username=f"bulk{i}") for i in range(n))
        Membership.objects.bulk_create(Membership(user=u, account=account) for u in users)
    elif label == "ringpools.campaign":
        Campaign.objects.bulk_create(Campaign(account=account, name=f"Bulk {i}") for i in range(n))
    elif label == "ringpools.destinationnumber":
        DestinationNumber.objects.bulk_create(
            DestinationNumber(account=account, number=f"+1213{5000000 + i:07d}") for i in range(n)
        )
    elif label == "ringpools.ringpool":
        RingPool.objects.bulk_create(
            RingPool(
                account=account,
                campaign=pool.campaign,
                destination_number=pool.destination_number,
                name=f"Bulk {i}",
                key=f"rp_bulk_{i}",
            )
            for i in range(n)
        )
    elif label == "ringpools.promonumber":
        _numbers(pool, n)
    elif label == "ringpools.lease":
        Lease.objects.bulk_create(
            Lease(pool=pool, number=number, visitor_id=f"v{i:06d}", started_at=NOW, expires_at=NOW)
            for i, number in enumerate(_numbers(pool, n))
        )
    elif label == "ringpools.call":
        Call.objects.bulk_create(
            Call(
                account=account,
                pool=pool,
                number=number,
                call_sid=f"CAbulk{i}",
                to_number=number.number,
                received_at=NOW,
            )
            for i, number in enumerate(_numbers(pool, n))
        )
    elif label == "ringpools.poolhourlyfigures":
        PoolHourlyFigures.objects.bulk_create(
            PoolHourlyFigures(pool=pool, hour=NOW - timedelta(hours=i // 2), shard=i % 2, presentations=1)
            for i in range(n)
        )
    elif label == "scaling.autoscalingsettings":
        accounts = Account.objects.bulk_create(Account(name=f"Bulk {i}", slug=f"bulk-{i}") for i in range(n))
        AutoScalingSettings.objects.bulk_create(AutoScalingSettings(account=a) for a in accounts)
    elif label == "scaling.scalingevent":
        ScalingEvent.objects.bulk_create(
            factories.ScalingEventFactory.build_batch(n, pool=pool, account=account)
        )
    elif label == "scaling.inventorynumber":
        InventoryNumber.objects.bulk_create(
            InventoryNumber(
                number=f"+1213{5000000 + i:07d}", number_type="local", sold_to=account if i % 2 else None
            )
            for i in range(n)
        )
    else:
        raise AssertionError(label)


@pytest.mark.parametrize("label", sorted(MODELS))
def test_every_page_renders_for_superusers_and_account_managers_in_bounded_queries(
    client, superuser, manager, label
):
    obj = MODELS[label]()
    pages = [url(label, "changelist"), url(label, "change", obj.pk)]

    def queries_per_page() -> dict[tuple[str, str], int]:
        counts = {}
        for person in (superuser, manager):
            client.force_login(person)
            for page in pages:
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(page)
                assert response.status_code == 200, (person.username, page)
                counts[(person.username, page)] = len(queries.captured_queries)
        return counts

    queries_per_page()  # warm the per-process caches (content types, permissions)
    few = queries_per_page()
    _bulk(label, THOUSANDS)
    assert queries_per_page() == few


@pytest.mark.parametrize("label", FACTS)
@pytest.mark.parametrize("who", ["superuser", "manager"])
def test_facts_refuse_add_change_and_delete_for_everyone(client, request, label, who):
    client.force_login(request.getfixturevalue(who))
    obj = MODELS[label]()
    assert client.get(url(label, "add")).status_code == 403
    assert client.post(url(label, "change", obj.pk), {}).status_code == 403
    assert client.post(url(label, "delete", obj.pk), {"post": "yes"}).status_code == 403
    listing = client.get(url(label, "changelist"))
    assert listing.status_code == 200 and "delete_selected" not in listing.content.decode()
    assert client.get(url(label, "change", obj.pk)).status_code == 200  # viewable
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_hourly_figures_are_shown_summed_per_pool_and_hour(client, staff):
    pool = factories.RingPoolFactory(name="Sharded pool")
    hour = NOW.replace(minute=0)
    for shard, presentations in ((0, 10), (3, 7), (5, 1)):
        factories.PoolHourlyFiguresFactory(pool=pool, hour=hour, shard=shard, presentations=presentations)
    factories.PoolHourlyFiguresFactory(pool=pool, hour=hour - timedelta(hours=1), shard=4, presentations=2)
    page = client.get(url("ringpools.poolhourlyfigures", "changelist")).content.decode()
    rows = [r for r in page.split("<tr")[2:] if "Sharded pool" in r]
    assert len(rows) == 2  # one per hour, whatever the shards
    assert ">18<" in rows[0] and ">2<" in rows[1]


def test_account_managers_change_pool_and_auto_scaling_settings_through_the_audit(client, manager):
    client.force_login(manager)
    pool = factories.RingPoolFactory(max_size=50)
    data = pool_form(
        {
            "account": pool.account_id,
            "campaign": pool.campaign_id,
            "destination_number": pool.destination_number_id,
            "name": pool.name,
            "max_size": 20,
            "auto_scaling_enabled": "on",
            "allowed_origins": '["https://www.example.com"]',
        }
    )
    assert client.post(url("ringpools.ringpool", "change", pool.pk), data).status_code == 302
    event = ScalingEvent.objects.get(pool=pool, kind="settings_changed")
    assert event.actor == manager and event.figures == {"max_size": {"before": 50, "after": 20}}

    settings = factories.AutoScalingSettingsFactory(account=pool.account)
    response = client.post(
        url("scaling.autoscalingsettings", "change", settings.pk),
        {
            "account": pool.account_id,
            "scope": "all",
            "growth_mode": "step",
            "growth_step": 2,
            "growth_percent": 10,
            "growth_cap_per_interval": 5,
            "growth_interval_minutes": 10,
            "policy": "seed",
        },
    )
    assert response.status_code == 302
    settings.refresh_from_db()
    assert (settings.growth_step, settings.enable_for_new_pools) == (2, False)
    assert settings.history.first().history_user == manager

    # Never: adding or deleting pools, deleting numbers, changing an account.
    assert client.get(url("ringpools.ringpool", "add")).status_code == 403
    assert client.post(url("ringpools.ringpool", "delete", pool.pk), {"post": "yes"}).status_code == 403
    number = factories.PromoNumberFactory(pool=pool)
    assert client.post(url("ringpools.promonumber", "delete", number.pk), {"post": "yes"}).status_code == 403
    assert client.post(url("accounts.account", "change", pool.account_id), {"name": "x"}).status_code == 403


def test_the_account_manager_role_is_made_by_the_project_and_kept_as_defined():
    group = Group.objects.get(name=ACCOUNT_MANAGERS.group)
    granted = {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    }
    assert {
        "ringpools.change_ringpool",
        "scaling.change_autoscalingsettings",
        "ringpools.view_call",
    } <= granted
    assert not {p for p in granted if ".delete_" in p or ".add_" in p}
    assert "accounts.change_carrier_credentials" not in granted and "accounts.change_account" not in granted
    # Someone widens the group in admin; the next migrate (or register_roles) puts the definition back.
    group.permissions.add(Permission.objects.get(codename="delete_call"))
    out = StringIO()
    call_command("register_roles", stdout=out)
    assert "updated  Account managers" in out.getvalue()
    assert not group.permissions.filter(codename="delete_call").exists()
    assert Group.objects.filter(name=ACCOUNT_MANAGERS.group).count() == 1
