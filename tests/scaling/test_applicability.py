"""Whether auto-scaling applies to a pool: the SQL selection the jobs use agrees with the rule admin shows."""

from __future__ import annotations

import itertools

import pytest

from ringpools.models import RingPool
from scaling.applicability import applicable_pools, pool_applicability, pools_with_applicability
from scaling.choices import Scope
from tests import factories

pytestmark = pytest.mark.django_db


def test_the_jobs_select_exactly_the_pools_the_rule_says_apply():
    cases = itertools.product(
        (True, False),  # feature available
        (None, *Scope.values),  # no settings row yet, or one of the scopes
        (True, False),  # campaign selected
        (True, False),  # destination selected
        (True, False),  # pool flag
        (True, False),  # pool active
    )
    expected_on = set()
    for feature, scope, campaign_selected, destination_selected, enabled, active in cases:
        account = factories.AccountFactory(auto_scaling_available=feature)
        pool = factories.RingPoolFactory(account=account, auto_scaling_enabled=enabled, is_active=active)
        if scope is not None:
            chosen = factories.AutoScalingSettingsFactory(account=account, scope=scope)
            if campaign_selected:
                chosen.campaigns.add(pool.campaign)
            if destination_selected:
                chosen.destination_numbers.add(pool.destination_number)
        in_scope = (
            scope in (None, Scope.ALL_CAMPAIGNS)
            or (scope == Scope.SELECTED_CAMPAIGNS and campaign_selected)
            or (scope == Scope.SELECTED_DESTINATIONS and destination_selected)
        )
        if feature and in_scope and enabled and active:
            expected_on.add(pool.pk)

    verdicts = {p.pk: pool_applicability(p) for p in pools_with_applicability(RingPool.objects.all())}
    assert {pk for pk, v in verdicts.items() if v.applies} == expected_on
    assert set(applicable_pools().values_list("pk", flat=True)) == expected_on
    assert len(verdicts) == 2 * 4 * 2 * 2 * 2 * 2


def test_a_pool_outside_the_scope_says_so_in_words():
    chosen = factories.AutoScalingSettingsFactory(scope=Scope.SELECTED_CAMPAIGNS)
    pool = factories.RingPoolFactory(account=chosen.account)
    verdict = pool_applicability(pools_with_applicability(RingPool.objects.all()).get(pk=pool.pk))
    assert not verdict.applies
    assert verdict.reason == "campaign outside the account's scope"
