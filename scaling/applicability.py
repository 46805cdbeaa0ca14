"""Where auto-scaling applies (SPEC §5, §6): the rule, and the same rule in SQL.

Whether auto-scaling applies to a pool is one pure rule (`auto_scaling_applies`) fed by one query:
the annotations below carry the facts the rule needs, and `applicable_pools` is the same rule in SQL,
so a job can select the pools it acts on without a query per pool. Tests hold the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from ringpools.models import RingPool
from scaling.choices import Scope
from scaling.models import AutoScalingSettings

_SelectedCampaigns = AutoScalingSettings.campaigns.through
_SelectedDestinations = AutoScalingSettings.destination_numbers.through


@dataclass(frozen=True)
class Applicability:
    applies: bool
    reason: str


def auto_scaling_applies(
    *,
    feature_available: bool,
    scope: str,
    campaign_selected: bool,
    destination_selected: bool,
    pool_enabled: bool,
    pool_active: bool,
) -> Applicability:
    """Whether auto-scaling applies to a pool (SPEC §6), and in words why not."""
    if not feature_available:
        return Applicability(False, "feature not available to the account")
    if scope == Scope.SELECTED_CAMPAIGNS and not campaign_selected:
        return Applicability(False, "campaign outside the account's scope")
    if scope == Scope.SELECTED_DESTINATIONS and not destination_selected:
        return Applicability(False, "destination number outside the account's scope")
    if not pool_enabled:
        return Applicability(False, "turned off for this pool")
    if not pool_active:
        return Applicability(False, "pool inactive")
    return Applicability(True, "on")


def pools_with_applicability(queryset: QuerySet[RingPool]) -> QuerySet[RingPool]:
    """Pools annotated with the facts `auto_scaling_applies` reads: the account's scope and whether
    the pool's campaign / destination number is selected in it (no query per pool)."""
    return queryset.annotate(
        scaling_scope=Coalesce(
            Subquery(AutoScalingSettings.objects.filter(account=OuterRef("account")).values("scope")[:1]),
            Value(Scope.ALL_CAMPAIGNS),
        ),
        campaign_selected=Exists(
            _SelectedCampaigns.objects.filter(
                autoscalingsettings__account=OuterRef("account"), campaign=OuterRef("campaign")
            )
        ),
        destination_selected=Exists(
            _SelectedDestinations.objects.filter(
                autoscalingsettings__account=OuterRef("account"),
                destinationnumber=OuterRef("destination_number"),
            )
        ),
        scaling_feature=F("account__auto_scaling_available"),
    )


class ApplicabilityFacts(Protocol):
    """The annotations `pools_with_applicability` puts on a pool."""

    scaling_feature: bool
    scaling_scope: str
    campaign_selected: bool
    destination_selected: bool


def pool_applicability(pool: RingPool) -> Applicability:
    """The verdict for a pool read through `pools_with_applicability`."""
    facts = cast(ApplicabilityFacts, pool)
    return auto_scaling_applies(
        feature_available=facts.scaling_feature,
        scope=facts.scaling_scope,
        campaign_selected=facts.campaign_selected,
        destination_selected=facts.destination_selected,
        pool_enabled=pool.auto_scaling_enabled,
        pool_active=pool.is_active,
    )


def applicable_pools(queryset: QuerySet[RingPool] | None = None) -> QuerySet[RingPool]:
    """The pools where auto-scaling applies, selected in SQL (the same rule as `auto_scaling_applies`)."""
    queryset = RingPool.objects.all() if queryset is None else queryset
    return pools_with_applicability(queryset).filter(
        Q(scaling_scope=Scope.ALL_CAMPAIGNS)
        | Q(scaling_scope=Scope.SELECTED_CAMPAIGNS, campaign_selected=True)
        | Q(scaling_scope=Scope.SELECTED_DESTINATIONS, destination_selected=True),
        account__auto_scaling_available=True,  # scaling_feature, named by its field for the type checker
        auto_scaling_enabled=True,
        is_active=True,
    )
