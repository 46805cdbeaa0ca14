"""`prune_ringpools` as people read it: every pool whose numbers are in the bill is listed, in
auto-scaling's scope or not; the default output summarises what stays, `-v 2` gives each number's
verdict; counts have their nouns in the right number; the instant says its zone."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from tests import factories
from tests.scaling.pruning.test_prune import LAST_DAY, make_pool

pytestmark = pytest.mark.django_db


def prune(*args: str) -> str:
    out = StringIO()
    call_command("prune_ringpools", "--at", LAST_DAY.isoformat(), "--dry-run", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def pools():
    account = factories.AccountFactory(name="Coastal Plumbing", timezone="America/Los_Angeles")
    scoped = make_pool(10, idle=6, account=account, name="Spring Sale")
    outside = make_pool(4, idle=4, account=account, name="Old Flyer", auto_scaling_enabled=False)
    return scoped, outside


def test_it_lists_the_pool_outside_the_scope_whose_numbers_are_in_the_bill(pools):
    output = prune()
    assert "Month-end prune at 2026-11-30 20:00 UTC" in output
    assert 'Pool "Spring Sale" (10 rotating, minimum' in output
    line = next(line for line in output.splitlines() if '"Old Flyer"' in line)
    assert line.strip() == (
        'Pool "Old Flyer" (5 numbers in the bill): not pruned, auto-scaling does not apply '
        "(turned off for this pool)"
    )
    assert "1 pool decided; would remove 2 numbers" in output
    assert "1 pool outside the scope, kept whole" in output


def test_the_default_summarises_what_stays_and_v2_gives_each_numbers_verdict(pools):
    scoped, _ = pools
    summary, every = prune(), prune("-v", "2")
    assert (
        "stays     9 numbers — held back by the 20% cap (4), presented in the past 5 days (4), "
        "the overflow number (1); -v 2 lists each one"
    ) in summary
    stays = [line for line in every.splitlines() if line.strip().startswith("stays")]
    # 8 rotating numbers that stay and the overflow number, each on its own line with its reason.
    assert len(stays) == 9
    staying = {str(n.number.as_national) for n in scoped.numbers.all()} - {
        line.split()[2] + " " + line.split()[3] for line in every.splitlines() if "would go" in line
    }
    assert {" ".join(line.split()[1:3]) for line in stays} == staying
    assert len(every.splitlines()) > len(summary.splitlines())


def test_an_account_with_only_pools_outside_the_scope_still_shows_them():
    account = factories.AccountFactory(name="Quiet Roofing", timezone="America/Los_Angeles")
    make_pool(3, idle=3, account=account, name="Paused", auto_scaling_enabled=False)
    output = prune()
    assert "Quiet Roofing (America/Los_Angeles; local date Monday 30 November 2026" in output
    assert '"Paused" (4 numbers in the bill): not pruned' in output
    assert "0 pools decided; would remove 0 numbers" in output
