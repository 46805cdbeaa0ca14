"""The hand-out's statements come from a commented source (ringpools/handout.sql): the executed text
derived from it is the one recorded before it moved there, byte for byte, and short enough that psycopg
prepares it. A source the loader cannot read says where and why, instead of a bare assert."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ringpools import handout_steps
from ringpools.handout_steps import PREPARE_LIMIT, HandoutSqlError, statements_from

RECORDED = Path(__file__).with_name("handout_statements.sql.txt")


def recorded() -> dict[str, str]:
    return dict(re.findall(r"^== (\w+) ==\n(.*)$", RECORDED.read_text(encoding="utf-8"), re.M))


@pytest.mark.parametrize("name", ["HOLD_SQL", "CLAIM_SQL", "RENEW_SQL"])
def test_the_executed_statement_is_the_recorded_one_and_under_the_prepare_limit(name):
    executed = getattr(handout_steps, name)
    assert executed == recorded()[name]
    assert len(executed.encode()) < PREPARE_LIMIT


def test_the_source_names_parameters_in_words_and_the_executed_text_by_one_letter():
    source = handout_steps.SOURCE.read_text(encoding="utf-8")
    assert "%(rested_before)s" in source and "%(r)s" not in source
    assert "%(r)s" in handout_steps.HOLD_SQL and "rested_before" not in handout_steps.HOLD_SQL
    assert "--" not in handout_steps.HOLD_SQL  # comments stay in the source


SMALL = """
-- fragment: mine
-- the pool's own numbers
n.pool_id = %(pool)s AND n.state = {state_active}
-- statement: probe
SELECT n.id FROM {number_table} n WHERE {fragment:mine}  -- a trailing comment
    AND n.busy_until <= %(now)s
"""


def test_a_small_source_is_derived_as_the_loader_promises():
    assert statements_from(SMALL) == {
        "probe": "SELECT n.id FROM ringpools_promonumber n WHERE n.pool_id = %(p)s AND n.state = 'active' "
        "AND n.busy_until <= %(t)s"
    }


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (SMALL.replace("{state_active}", "{state_gone}"), "unknown placeholder {state_gone}"),
        (SMALL.replace("%(now)s", "%(today)s"), "unknown parameter %(today)s"),
        (SMALL.replace("{fragment:mine}", "{fragment:yours}"), "unknown fragment 'yours'"),
        (SMALL + "-- fragment: mine\nx\n", "fragment 'mine' is defined twice"),
        (SMALL.replace("{state_active}", "{fragment:mine}"), "fragment 'mine' includes itself"),
        (SMALL + "-- statement: long\nSELECT " + "1, " * 1400 + "1\n", "statement 'long' is 42"),
    ],
)
def test_a_source_the_loader_cannot_read_says_where_and_why(source, says):
    with pytest.raises(HandoutSqlError, match=re.escape(says)):
        statements_from(source, where="handout.sql")
