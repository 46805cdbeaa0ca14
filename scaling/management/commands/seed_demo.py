from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
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
from scaling.demo import Story, demo_history_write, history_start
from scaling.models import InventoryNumber
from scaling.services import auto_scaling_settings_for, ringpool_create

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
# What the pool health charts of each demo pool show (scaling/demo.py).
STORIES = {
    "rp_demo_local": Story(rush_days_ago=3),  # a rush, overflow, and growth absorbing it
    "rp_demo_sf": Story(traffic=0.3),  # quiet: looks too big
    "rp_demo_tollfree": Story(prune_one=True),  # one idle number pruned at last month's end
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
        4,
    ),
)


class Command(BaseCommand):
    help = "Create (or leave as they are) the demo account, people, campaigns, pools and carrier inventory."

    def handle(self, *args: Any, **options: Any) -> None:
        account = self._seed()
        self._capped_pool_alert(account)
        self._report(account)

    @transaction.atomic
    def _seed(self) -> Account:
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
        auto_scaling_settings_for(account)
        roles_register()  # the account managers' group, as after every migrate
        managers = Group.objects.get(name=ACCOUNT_MANAGERS.group)
        for username, role, first_name in PEOPLE:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first_name, "email": f"{username}@example.com"}
            )
            if created:
                user.set_password(DEMO_PASSWORD)
            # Brought up to date on every run (a demo seeded before kept `staff` a superuser).
            user.is_staff = role in STAFF
            user.is_superuser = role == PLATFORM_SUPERUSER
            user.save(update_fields=["password", "is_staff", "is_superuser"])
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
        for key, name, campaign_name, destination, number_type, area_code, region, size in POOLS:
            campaign, _ = Campaign.objects.get_or_create(account=account, name=campaign_name)
            destination_number, _ = DestinationNumber.objects.get_or_create(
                account=account, number=destination, defaults={"label": "Call center"}
            )
            if not RingPool.objects.filter(key=key).exists():
                now = timezone.now()
                # Created weeks ago, so the charts show a past; replayed through the real services.
                pool = ringpool_create(
                    account=account,
                    campaign=campaign,
                    destination_number=destination_number,
                    name=name,
                    number_type=number_type,
                    area_code=area_code,
                    region=region,
                    size=size,
                    now=history_start(now),
                    key=key,
                    allowed_origins=ORIGINS,
                )
                demo_history_write(pool=pool, story=STORIES[key], now=now)
        return account

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
