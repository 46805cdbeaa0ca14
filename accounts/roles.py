"""Staff roles the project defines, as a small table (like config/schedules.py).

`roles_register` makes each role's group hold exactly these permissions. It runs after every
`migrate` (post_migrate, so a deploy or a new test database always has it) and from the command
`register_roles`. A table in code, not a data migration, because the permissions it names keep coming
with later apps and issues (the prune issue adds pinning and the prune preview here), and a data
migration would freeze the list at the day it was written. Edits made to the group in admin are put
back: the role is the project's definition, not a staff setting.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaffRole:
    group: str
    view_apps: tuple[str, ...]  # every model of these apps can be viewed
    grants: tuple[str, ...]  # "app_label.codename" beyond viewing


ACCOUNT_MANAGERS = StaffRole(
    group="Account managers",
    view_apps=("accounts", "ringpools", "scaling", "django_celery_beat"),
    grants=(
        "accounts.open_customer_area",  # every account's customer pages, read-only
        "ringpools.change_ringpool",  # pool settings, through the audited services
        "scaling.change_autoscalingsettings",
        # Every field of a number is read-only in admin; this is what pinning (prune issue) will need.
        "ringpools.change_promonumber",
        # No delete, no add, and never accounts.change_carrier_credentials.
    ),
)
ROLES = (ACCOUNT_MANAGERS,)


def roles_register() -> list[str]:
    """Create or update each role's group. Returns one line per role."""
    lines = []
    for role in ROLES:
        group, created = Group.objects.get_or_create(name=role.group)
        wanted = Q(content_type__app_label__in=role.view_apps, codename__startswith="view_")
        for grant in role.grants:
            app_label, codename = grant.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(wanted))
        missing = set(role.grants) - {f"{p.content_type.app_label}.{p.codename}" for p in permissions}
        if missing:
            log.warning("Role %s: permissions not found (yet): %s", role.group, ", ".join(sorted(missing)))
        group.permissions.set(permissions)
        lines.append(f"{'created' if created else 'updated'}  {role.group}  ({len(permissions)} permissions)")
    return lines
