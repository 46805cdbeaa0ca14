"""People's words for records (issue 21): one name for who did something, figures as a small table
with coded values in words, ids and request ids left out, text escaped."""

from __future__ import annotations

import pytest

from scaling.templatetags.words import figures, person
from tests import factories


@pytest.mark.django_db
def test_who_did_it_is_named_the_same_way_everywhere():
    assert person(None) == "the system"
    assert person(factories.StaffFactory(username="sam", first_name="", last_name="")) == "sam"
    assert person(factories.StaffFactory(username="kim", first_name="Kim", last_name="Lee")) == "Kim Lee"


def test_figures_are_a_table_in_words_without_ids():
    html = str(
        figures(
            {
                "rule": "overflow_recent",
                "days_since_called": None,
                "cap_hit": True,
                "request_id": "ringpool-7-abc",
                "removed_ids": [1, 2],
                "note": "<script>x</script>",
            }
        )
    )
    assert '<th scope="row">rule</th><td>the pool overflowed in the past 30 days</td>' in html
    assert '<th scope="row">days since called</th><td>—</td>' in html
    assert '<th scope="row">cap hit</th><td>yes</td>' in html
    assert "ringpool-7-abc" not in html and "removed ids" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert figures({}) == "—" and figures({"request_id": "x"}) == "—"


@pytest.mark.django_db
def test_a_person_with_one_account_sees_its_name_in_full_not_a_switcher(client):
    from accounts.choices import Role
    from accounts.models import Membership

    account = factories.AccountFactory(name="Acme Home Services of the Central Coast")
    user = factories.UserFactory(username="solo")
    Membership.objects.create(user=user, account=account, role=Role.SUPER_USER)
    client.force_login(user)
    html = client.get("/pools/").content.decode()
    assert 'class="account-name"' in html and "Acme Home Services of the Central Coast" in html
    assert 'id="switch-account"' not in html
    second = factories.AccountFactory(name="Second Office")
    Membership.objects.create(user=user, account=second, role=Role.MEMBER)
    html = client.get("/pools/").content.decode()
    assert 'id="switch-account"' in html and 'class="account-name"' not in html
