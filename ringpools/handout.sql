-- The hand-out's PostgreSQL statements (ringpools/handout_steps.py loads this file at import).
--
-- Blocks: a line `-- statement: NAME` or `-- fragment: NAME` starts a block, which runs to the next
-- such line. Statements are what the hand-out executes (HOLD_SQL, CLAIM_SQL, RENEW_SQL: `hold`,
-- `claim`, `renew`); fragments are pieces the statements (or other fragments) splice in.
--
-- Placeholders, filled in by the loader (handout_steps.statements_from); any other `{...}` is an error:
--   {fragment:NAME}   the fragment NAME's text, its comments removed
--   {lease_table}     Lease._meta.db_table;  {number_table}  PromoNumber._meta.db_table
--   {state_active}, {role_rotating}   NumberState.ACTIVE, NumberRole.ROTATING, quoted (choice values go
--                     into the text, not parameters, so the planner can match the partial indexes)
--   {outcome_NAME}    Outcome's value NAME, quoted: {outcome_kept}, {outcome_none}, ...
--   {backlog_flagged} BACKLOG_FLAGGED;  {one_lease_per_visitor}  ONE_LEASE_PER_VISITOR
--
-- Parameters: %(pool)s the pool's id, %(visitor)s the visitor id, %(now)s, %(expires)s the lease's new
-- expiry, %(rested_before)s (now - cool-down), %(fresh_until)s (a lease ending after this was extended
-- a moment ago), %(may_claim)s, %(page_url)s, %(params)s; any other name is an error. The executed
-- text names each by one letter (handout_steps.PARAMETERS) and is one line without comments: psycopg
-- caches the conversion of statements shorter than 4,096 bytes only, and HOLD_SQL is close to that.
--
-- `--` starts a comment to the end of its line wherever it stands: no literal here may contain it.
-- The BUSY probes look for free numbers that SKIP LOCKED passed over. Every probe is ordered like its
-- index, so that index is what the plan reads (an exhausted pool's probe is one index page, not a scan
-- of the pool), in a generic plan as in a custom one.


-- fragment: rotating
-- The pool's numbers in rotation.
n.pool_id = %(pool)s AND n.state = {state_active} AND n.role = {role_rotating}


-- fragment: usable
-- A renewal keeps the number only while it is still this lease's, active and rotating in this pool.
n.state = {state_active} AND n.role = {role_rotating} AND n.pool_id = l.pool_id AND n.busy_until = l.expires_at


-- fragment: lease_parts
-- The visitor's live lease: `fresh` if it was extended a moment ago (kept: no lock, no write); else
-- `cur`, locked, renewed while its number is usable, ended if the number left service.
fresh AS (
    SELECT l.id, l.expires_at, n.id AS number_id, n.number
    FROM {lease_table} l JOIN {number_table} n ON n.id = l.number_id
    WHERE l.pool_id = %(pool)s AND l.visitor_id = %(visitor)s AND l.expires_at >= %(fresh_until)s
      AND {fragment:usable}
    ORDER BY l.expires_at DESC
    LIMIT 1
), cur AS (
    SELECT l.id, n.id AS number_id, coalesce(({fragment:usable}), false) AS usable
    FROM {lease_table} l JOIN {number_table} n ON n.id = l.number_id
    WHERE l.pool_id = %(pool)s AND l.visitor_id = %(visitor)s AND l.expires_at > %(now)s
      AND NOT EXISTS (SELECT 1 FROM fresh)
    ORDER BY l.expires_at DESC
    LIMIT 1
    FOR UPDATE OF l, n
), renewed AS (
    UPDATE {number_table} n SET busy_until = %(expires)s, last_presented_at = %(now)s
    FROM cur WHERE n.id = cur.number_id AND cur.usable
    RETURNING n.number, cur.id AS lease_id
), renewed_lease AS (
    UPDATE {lease_table} l SET expires_at = %(expires)s, released_at = NULL
    FROM renewed WHERE l.id = renewed.lease_id
), ended AS (
    UPDATE {lease_table} l SET expires_at = GREATEST(%(now)s, l.started_at)
    FROM cur WHERE l.id = cur.id AND NOT cur.usable
    RETURNING l.id
)


-- fragment: claim_parts
-- A claim, when `wanted` has a row: a number in the order of SPEC §3.3, leased (DO NOTHING on a
-- conflict with the visitor's other request, which may have leased one first: the one arbiter, so
-- PostgreSQL checks no other constraint twice; a number held twice would be an error, never a quiet
-- retry) and marked busy; the rested numbers found on the way are flagged.
backlog AS (
    -- Rested numbers not yet flagged: at most {backlog_flagged} per claim, the rest wait for the next claims.
    SELECT n.id, n.acquired_at FROM {number_table} n
    WHERE {fragment:rotating} AND NOT n.rested AND n.busy_until <= %(rested_before)s
      AND EXISTS (SELECT 1 FROM wanted)
    ORDER BY n.busy_until, n.id
    LIMIT {backlog_flagged}
    FOR UPDATE SKIP LOCKED
), first_rested AS (
    -- The flagged rested number acquired first.
    SELECT n.id, n.acquired_at FROM {number_table} n
    WHERE {fragment:rotating} AND n.rested AND n.busy_until <= %(rested_before)s
      AND EXISTS (SELECT 1 FROM wanted)
    ORDER BY n.acquired_at, n.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), released_longest_ago AS (
    -- No rested number: the free one released longest ago.
    SELECT n.id FROM {number_table} n
    WHERE {fragment:rotating} AND NOT n.rested AND n.busy_until <= %(now)s
      AND EXISTS (SELECT 1 FROM wanted)
      AND NOT EXISTS (SELECT 1 FROM backlog) AND NOT EXISTS (SELECT 1 FROM first_rested)
    ORDER BY n.busy_until, n.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), candidate AS (
    -- Rested numbers first (the one acquired first), then the one released longest ago.
    SELECT id FROM (
        SELECT id, acquired_at, 0 AS tier FROM first_rested
        UNION ALL SELECT id, acquired_at, 0 FROM backlog
        UNION ALL SELECT id, NULL, 1 FROM released_longest_ago
    ) c
    ORDER BY tier, acquired_at, id
    LIMIT 1
), new_lease AS (
    INSERT INTO {lease_table} (pool_id, number_id, visitor_id, page_url, params, started_at, expires_at)
    SELECT %(pool)s, id, %(visitor)s, %(page_url)s, %(params)s, %(now)s, %(expires)s FROM candidate
    ON CONFLICT ON CONSTRAINT {one_lease_per_visitor} DO NOTHING
    RETURNING id, number_id
), claimed AS (
    UPDATE {number_table} n SET busy_until = %(expires)s, last_presented_at = %(now)s, rested = false
    FROM new_lease WHERE n.id = new_lease.number_id
    RETURNING n.number, new_lease.id AS lease_id
), flagged AS (
    -- The backlog's numbers not claimed: flagged rested.
    UPDATE {number_table} n SET rested = true
    FROM backlog WHERE n.id = backlog.id AND n.id NOT IN (SELECT id FROM candidate)
)


-- fragment: free_exists
-- Any free number of the pool, locked by a claim this instant or not (a plain read does not skip locks).
(SELECT 1 FROM {number_table} n WHERE {fragment:rotating} AND n.rested AND n.busy_until <= %(now)s
    ORDER BY n.acquired_at, n.id LIMIT 1) IS NOT NULL
OR (SELECT 1 FROM {number_table} n WHERE {fragment:rotating} AND NOT n.rested AND n.busy_until <= %(now)s
    ORDER BY n.busy_until, n.id LIMIT 1) IS NOT NULL


-- fragment: unclaimed
-- No claim made: a candidate means the visitor's other request leased first (ask again); free numbers
-- that SKIP LOCKED passed over mean other claims hold them this instant (ask again); else overflow.
WHEN EXISTS (SELECT 1 FROM candidate) THEN {outcome_conflict}
WHEN {fragment:free_exists}
    THEN {outcome_busy}
ELSE {outcome_none}


-- statement: hold
-- HOLD_SQL: keep, renew or end the visitor's live lease; or (no live lease) claim. One row: (number,
-- lease id, kept lease's expiry, kept number's id, outcome).
WITH {fragment:lease_parts}, wanted AS (
    -- A claim only if the caller may claim and the visitor has no live lease.
    SELECT 1 WHERE %(may_claim)s AND NOT EXISTS (SELECT 1 FROM cur) AND NOT EXISTS (SELECT 1 FROM fresh)
), {fragment:claim_parts}
SELECT
    coalesce(fresh.number, renewed.number, claimed.number),
    coalesce(fresh.id, renewed.lease_id, claimed.lease_id),
    fresh.expires_at,
    fresh.number_id,
    CASE
        WHEN fresh.id IS NOT NULL THEN {outcome_kept}
        WHEN renewed.lease_id IS NOT NULL THEN {outcome_renewed}
        WHEN claimed.lease_id IS NOT NULL THEN {outcome_claimed}
        WHEN EXISTS (SELECT 1 FROM ended) THEN {outcome_ended}
        WHEN NOT %(may_claim)s THEN {outcome_refused}
        {fragment:unclaimed}
    END
FROM (SELECT 1) AS one LEFT JOIN fresh ON true LEFT JOIN renewed ON true LEFT JOIN claimed ON true


-- statement: claim
-- CLAIM_SQL: a new visitor's claim (Ask.new_visitor, and the caller may claim): the claim alone,
-- without the lease parts' locking lookup and three writes that find nothing (about a tenth of the
-- statement's database time). A visitor who holds a live lease after all (a wrong hint) locks and
-- writes nothing: one unlocked probe finds the lease, the answer is CONFLICT, and the hand-out asks
-- with HOLD_SQL.
WITH held AS (
    SELECT 1 FROM {lease_table} l
    WHERE l.pool_id = %(pool)s AND l.visitor_id = %(visitor)s AND l.expires_at > %(now)s
    LIMIT 1
), wanted AS (
    SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM held)
), {fragment:claim_parts}
SELECT
    claimed.number,
    claimed.lease_id,
    NULL::timestamptz,
    NULL::bigint,
    CASE
        WHEN claimed.lease_id IS NOT NULL THEN {outcome_claimed}
        WHEN EXISTS (SELECT 1 FROM held) THEN {outcome_conflict}
        {fragment:unclaimed}
    END
FROM (SELECT 1) AS one LEFT JOIN claimed ON true


-- statement: renew
-- RENEW_SQL: a renewal (Ask.renewal): the lease parts alone, without the claim's nodes to start
-- (about a third of a kept renewal's database time). No live lease: the overflow if no number is free
-- at all (one statement for an overflowing visitor's keep-alive in a rush), else UNHELD and the
-- hand-out asks with HOLD_SQL, which claims.
WITH {fragment:lease_parts}
SELECT
    coalesce(fresh.number, renewed.number),
    coalesce(fresh.id, renewed.lease_id),
    fresh.expires_at,
    fresh.number_id,
    CASE
        WHEN fresh.id IS NOT NULL THEN {outcome_kept}
        WHEN renewed.lease_id IS NOT NULL THEN {outcome_renewed}
        WHEN EXISTS (SELECT 1 FROM ended) THEN {outcome_ended}
        WHEN NOT %(may_claim)s THEN {outcome_refused}
        WHEN {fragment:free_exists} THEN {outcome_unheld}
        ELSE {outcome_none}
    END
FROM (SELECT 1) AS one LEFT JOIN fresh ON true LEFT JOIN renewed ON true
