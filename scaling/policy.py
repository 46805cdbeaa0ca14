"""Pure rules of auto-scaling: plain values in, a decision and its reason out (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from scaling.choices import Scope


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
