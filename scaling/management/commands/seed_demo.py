from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Account, Membership, User
from accounts.roles import ACCOUNT_MANAGERS, roles_register
from ringpools import phone
from ringpools.choices import NumberRole, NumberState, NumberType
from ringpools.figures import handout_figures
from ringpools.handout import present_number
from ringpools.models import Campaign, DestinationNumber, RingPool
from ringpools.selectors import handout_pool
from scaling.alerts.conditions import alerts_check
from scaling.alerts.mail import alert_mails_send
from scaling.choices import AlertKind
from scaling.demo import HISTORY_DAYS, HistorySummary, Rush, Story, demo_history_replay, history_start
from scaling.models import InventoryNumber
from scaling.services import auto_scaling_settings_for, ringpool_create
from scaling.supply.inventory import InventoryCarrier

DEMO_PASSWORD = "ringpool-demo"
# Back-office logins: not members of the account.
ACCOUNT_MANAGER = "staff account manager (admin, every account's pages read-only)"
PLATFORM_SUPERUSER = "platform superuser (admin: schedules, carrier credentials, users)"
STAFF = {ACCOUNT_MANAGER, PLATFORM_SUPERUSER}
PEOPLE = (
    # username, role in the account (or a back-office login), first name
    ("staff", ACCOUNT_MANAGER, "Sam"),
    ("admin", PLATFORM_SUPERUSER, "Ada"),
    ("alice", Role.SUPER_USER, "Alice"),
    ("manny", Role.MANAGER, "Manny"),
    ("mia", Role.MEMBER, "Mia"),
)
# Fictional numbers (555-0100 to 555-0199) the demo carrier sells.
INVENTORY = (("805", 30), ("415", 20), ("212", 10), ("888", 30))
ORIGINS = ["http://127.0.0.1:8000", "http://localhost:8000"]
CAPPED_KEY = "rp_demo_capped"
# The traffic of each demo pool over the weeks before today, played through the product
# (scaling/demo.py): what its tiles, charts, events, prune records and bill then show.
STORIES = {
    # Busy office hours on 5 numbers, and a campaign's rush three days ago that growth absorbed.
    "rp_demo_local": Story(
        busiest_hour_visitors=3.0,
        rush=Rush(days_ago=3, start_hour=10, hours=1.5, visitors_per_hour=30.0),
    ),
    # Quiet: three numbers, rarely more than one in use.
    "rp_demo_sf": Story(busiest_hour_visitors=0.8),
    # Eight toll-free numbers of which a few carry the traffic: the month-end prune finds idle ones.
    "rp_demo_tollfree": Story(busiest_hour_visitors=1.5),
}
POOLS = (
    # key, name, campaign, destination, type, area code, region, size
    (
        "rp_demo_local",
        "Spring Sale — Santa Barbara",
        "Spring Sale",
        "+18055550100",
        NumberType.LOCAL,
        "805",
        "CA",
        5,
    ),
    (
        "rp_demo_sf",
        "Spring Sale — San Francisco",
        "Spring Sale",
        "+14155550100",
        NumberType.LOCAL,
        "415",
        "CA",
        3,
    ),
    (
        "rp_demo_tollfree",
        "Roofing Leads — national",
        "Roofing Leads",
        "+18055550100",
        NumberType.TOLL_FREE,
        "",
        "",
        8,
    ),
)


class Command(BaseCommand):
    help = (
        "Create (or leave as they are) the demo account, people, campaigns, pools and carrier inventory, "
        "and play the new pools' past weeks through the product (visitors, calls, growth, month-end prune)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=HISTORY_DAYS,
            help=f"Days of history to play through the product for new pools (default {HISTORY_DAYS}; "
            "the 30-day charts and the month-end prune need more than 30).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 1:
            raise CommandError("--days must be at least 1.")
        now = timezone.now()
        start = history_start(now, options["days"])
        account, created = self._seed(start)
        if created:
            # Outside the set-up's transaction: the hand-out and the passes commit as in production.
            summary = demo_history_replay(
                stories={key: STORIES[key] for key in created},
                start=start,
                end=now,
                carrier=InventoryCarrier(latency=0),
                tz=ZoneInfo(str(account.timezone)),
            )
            self._history_report(summary, start)
        self._capped_pool_alert(account)
        self._report(account)

    @transaction.atomic
    def _seed(self, start: datetime) -> tuple[Account, list[str]]:
        """The account, its people, the carrier's inventory and the pools not there yet, created at
        `start` (the account and its settings a day before). Returns the keys of the new pools."""
        before = start - timedelta(days=1)
        if not settings.DEBUG:
            self.stderr.write(self.style.WARNING("DEBUG is off: demo logins have a published password."))
        account, _ = Account.objects.get_or_create(
            slug="acme",
            defaults={
                "name": "Acme Home Services",
                "timezone": "America/Los_Angeles",
                "carrier_auth_token": "demo-carrier-auth-token",
                "carrier_account_sid": "ACdemo",
            },
        )
        if account.created_at > start:
            Account.objects.filter(pk=account.pk).update(created_at=before)
        auto_scaling_settings_for(account, now=before)
        roles_register()  # the account managers' group, as after every migrate
        managers = Group.objects.get(name=ACCOUNT_MANAGERS.group)
        password = make_password(DEMO_PASSWORD)  # one hash for all (one published password): 1 s less
        for username, role, first_name in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first_name, "email": f"{username}@example.com"}
            )
            if created:
                user.password = password
                user.date_joined = before
            # Brought up to date on every run (a demo seeded before kept `staff` a superuser).
            user.is_staff = role in STAFF
            user.is_superuser = role == PLATFORM_SUPERUSER
            user.save(update_fields=["password", "date_joined", "is_staff", "is_superuser"])
            if role == ACCOUNT_MANAGER:
                user.groups.add(managers)
            elif role not in STAFF:
                Membership.objects.get_or_create(user=user, account=account, defaults={"role": role})
        for area_code, count in INVENTORY:
            for line in range(101, 101 + count):
                facts = phone.facts(f"+1{area_code}5550{line}")
                InventoryNumber.objects.get_or_create(
                    number=facts.e164,
                    defaults={
                        "number_type": facts.number_type,
                        "area_code": facts.area_code,
                        "region": facts.region,
                        "monthly_cost": "1.00" if area_code != "888" else "2.00",
                    },
                )
        new_pools = []
        for key, name, campaign_name, destination, number_type, area_code, region, size in POOLS:
            campaign, new_campaign = Campaign.objects.get_or_create(account=account, name=campaign_name)
            if new_campaign:
                Campaign.objects.filter(pk=campaign.pk).update(created_at=before)
            destination_number, _ = DestinationNumber.objects.get_or_create(
                account=account, number=destination, defaults={"label": "Call center"}
            )
            if not RingPool.objects.filter(key=key).exists():
                ringpool_create(
                    account=account,
                    campaign=campaign,
                    destination_number=destination_number,
                    name=name,
                    number_type=number_type,
                    area_code=area_code,
                    region=region,
                    size=size,
                    carrier=InventoryCarrier(latency=0),
                    now=start,
                    key=key,
                    allowed_origins=ORIGINS,
                )
                new_pools.append(key)
        return account, new_pools

    def _history_report(self, summary: HistorySummary, start: datetime) -> None:
        self.stdout.write(
            f"Demo history since {start:%Y-%m-%d %H:%M} UTC, played through the product: "
            f"{summary.visitors:,} visitors ({summary.overflows:,} turned away), {summary.calls:,} calls, "
            f"{summary.numbers_added} numbers added by growth, {summary.numbers_pruned} removed at month end."
        )

    def _capped_pool_alert(self, account: Account) -> None:
        """A pool at its maximum size that turns visitors away now, through the real hand-out; its
        alert opened by the real check and mailed (printed on this console in the demo)."""
        if RingPool.objects.filter(key=CAPPED_KEY).exists():
            return
        campaign, _ = Campaign.objects.get_or_create(account=account, name="Storm Repair")
        destination, _ = DestinationNumber.objects.get_or_create(
            account=account, number="+18055550100", defaults={"label": "Call center"}
        )
        pool = ringpool_create(
            account=account,
            campaign=campaign,
            destination_number=destination,
            name="Storm Repair — Ventura",
            number_type=NumberType.LOCAL,
            area_code="805",
            region="CA",
            size=3,
            key=CAPPED_KEY,
            allowed_origins=ORIGINS,
            max_size=3,
        )
        now = timezone.now()
        shown = handout_pool(pool.key)
        for visitor in range(12):  # 3 hold the numbers, 9 are shown the overflow number
            present_number(pool=shown, visitor_id=f"demo-storm-{visitor:02d}", new_visitor=True, now=now)  # type: ignore[arg-type]
        handout_figures.flush()
        alerts_check(now=now, only=[AlertKind.AT_CAP])
        sent = alert_mails_send(now=now)
        self.stdout.write(
            f"Alert opened: {pool.name} is at its cap and turning visitors away ({sent} mails, above)."
        )

    def _report(self, account: Account) -> None:
        self.stdout.write(self.style.SUCCESS(f"Demo account: {account.name} ({account.timezone})"))
        self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
        for username, role, _ in PEOPLE:
            self.stdout.write(f"  {username:<6} {role}")
        self.stdout.write(
            "Super user's page: sign in at /account/sign-in/ as alice / "
            f"{DEMO_PASSWORD}, then Settings → Network → RingPool Auto-Scaling "
            "(/settings/network/ringpool-auto-scaling/); pool health charts under Pools (/pools/)."
        )
        self.stdout.write("Pools (key, name, numbers in rotation + the overflow number):")
        for pool in RingPool.objects.filter(account=account).order_by("name"):
            active = pool.numbers.filter(state=NumberState.ACTIVE)
            rotating = active.filter(role=NumberRole.ROTATING).count()
            overflow = " + overflow number" if active.filter(role=NumberRole.OVERFLOW).exists() else ""
            self.stdout.write(f"  {pool.key:<18} {pool.name}  ({rotating}{overflow})")
        self.stdout.write(
            f"Carrier inventory: {InventoryNumber.objects.filter(sold_to__isnull=True).count()} "
            "numbers for sale"
        )
