"""The customer's pages of the scaling app: Settings, RingPool Auto-Scaling, and pool health."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from accounts.access import AccountAccess, AccountRequest, account_view
from accounts.models import User
from ringpools.admin_tools import COST_CURRENCY
from ringpools.choices import NumberRole, NumberState
from ringpools.models import RingPool
from scaling.alerts.pages import account_open_alerts
from scaling.applicability import pool_applicability, pools_with_applicability
from scaling.health.charts import pool_health_charts
from scaling.lab.whatif import pool_recommendation
from scaling.models import Alert
from scaling.pages.forms import AutoScalingSettingsForm
from scaling.pages.history import LABELS, describe_value, settings_history
from scaling.services import (
    SettingsChange,
    StaleSettingsError,
    auto_scaling_settings_for,
    auto_scaling_settings_update,
)

HEALTH_DAYS = (1, 7, 30, 90)


@account_view
def settings_index(request: AccountRequest) -> HttpResponse:
    return render(request, "scaling/settings_index.html", {"access": request.access, "nav": "settings"})


@account_view
def auto_scaling_settings(request: AccountRequest) -> HttpResponse:
    access: AccountAccess = request.access
    if not access.account.auto_scaling_available:
        return render(request, "scaling/feature_unavailable.html", {"nav": "settings"}, status=404)
    current = auto_scaling_settings_for(access.account)
    status = 200
    if request.method == "POST":
        if not access.can_edit:
            raise PermissionDenied("Only the account's super users change these settings.")
        form = AutoScalingSettingsForm(request.POST, account=access.account, current=current)
        if request.POST.get("account") != str(access.account.pk):
            # The form was drawn for another account (switched in another tab): never apply it here.
            messages.error(
                request,
                f"This form was opened for another account; you are now looking at {access.account.name}. "
                "Nothing was changed.",
            )
            form, status = AutoScalingSettingsForm(account=access.account, current=current), 409
        elif form.is_valid():
            try:
                result = auto_scaling_settings_update(
                    account=access.account,
                    actor=request.user,
                    enable_for_new_pools=form.cleaned_data["enable_for_new_pools"],
                    include_overflow_number=form.cleaned_data["include_overflow_number"],
                    scope=form.cleaned_data["scope"],
                    campaigns=form.cleaned_data["campaigns"],
                    destination_numbers=form.cleaned_data["destination_numbers"],
                    seen_updated_at=form.cleaned_data["seen_updated_at"],
                )
            except StaleSettingsError as error:
                messages.error(request, error.messages[0])
                current.refresh_from_db()
                form, status = AutoScalingSettingsForm(account=access.account, current=current), 409
            except ValidationError as error:
                form.add_error(None, error)
                status = 400
            else:
                messages.success(request, _saved_message(result, narrowed=form.scope_narrowed))
                return redirect("auto-scaling-settings")
        else:
            status = 400
    else:
        form = AutoScalingSettingsForm(account=access.account, current=current)
    return render(
        request,
        "scaling/auto_scaling_settings.html",
        {
            "nav": "settings",
            "form": form,
            "campaign_rows": _campaign_rows(form, access),
            "history": settings_history(account=access.account),
        },
        status=status,
    )


def _saved_message(result: SettingsChange, *, narrowed: bool) -> str:
    if not result.changes:
        return "Nothing to save: the settings were already like this."
    parts = [
        f"{LABELS[name]}: {describe_value(name, change['before'])} → {describe_value(name, change['after'])}"
        for name, change in result.changes.items()
    ]
    note = " (a campaign was switched off, so the scope now lists the campaigns left on)" if narrowed else ""
    return "Saved. " + "; ".join(parts) + note + "."


def _campaign_rows(form: AutoScalingSettingsForm, access: AccountAccess) -> list[dict]:
    """Each campaign's switch with its pools and, for each pool, whether it scales and why not."""
    pools = (
        pools_with_applicability(RingPool.objects.filter(account=access.account))
        .select_related("destination_number")
        .annotate(
            active_numbers=Count(
                "numbers",
                filter=Q(numbers__state=NumberState.ACTIVE, numbers__role=NumberRole.ROTATING),
            )
        )
        .order_by("name")
    )
    by_campaign: dict[int, list[dict]] = defaultdict(list)
    for pool in pools:
        by_campaign[pool.campaign_id].append({"pool": pool, "verdict": pool_applicability(pool)})
    return [
        {"switch": switch, "pools": by_campaign.get(switch.data["value"].value, [])}
        for switch in form["campaigns"]
    ]


@account_view
def pool_list(request: AccountRequest) -> HttpResponse:
    access: AccountAccess = request.access
    pools = (
        pools_with_applicability(RingPool.objects.filter(account=access.account))
        .select_related("campaign", "destination_number")
        .annotate(
            active_numbers=Count(
                "numbers",
                filter=Q(numbers__state=NumberState.ACTIVE, numbers__role=NumberRole.ROTATING),
            )
        )
        .order_by("campaign__name", "name")
    )
    rows = [{"pool": pool, "verdict": pool_applicability(pool)} for pool in pools]
    return render(request, "scaling/pool_list.html", {"nav": "pools", "rows": rows})


@account_view
def pool_health(request: AccountRequest, pool_id: int) -> HttpResponse:
    access: AccountAccess = request.access
    # Another account's pool is as unknown as a pool that does not exist.
    pool = get_object_or_404(
        pools_with_applicability(RingPool.objects.filter(account=access.account)).select_related(
            "account", "campaign", "destination_number"
        ),
        pk=pool_id,
    )
    try:
        days = int(request.GET.get("days", 7))
    except ValueError:
        days = 7
    if days not in HEALTH_DAYS:
        raise Http404("Choose 1, 7, 30 or 90 days.")
    return render(
        request,
        "scaling/pool_health.html",
        {
            "nav": "pools",
            "pool": pool,
            "verdict": pool_applicability(pool),
            "days": days,
            "day_choices": HEALTH_DAYS,
            "charts": pool_health_charts(pool=pool, now=timezone.now(), days=days),
            "recommendation": pool_recommendation(pool=pool, now=timezone.now()),
            "currency": COST_CURRENCY,
        },
    )


@account_view
def alert_list(request: AccountRequest) -> HttpResponse:
    """The account's open alerts and those resolved in the last 30 days; the person's own choice of
    alert mail (POST: on or off, for themselves only)."""
    access: AccountAccess = request.access
    user = request.user
    if request.method == "POST":
        wants = request.POST.get("alert_emails") == "on"
        digest = request.POST.get("alert_digest") == "on"
        User.objects.filter(pk=user.pk).update(alert_emails=wants, alert_digest=digest)
        told = "Alert mail is on for you" if wants else "Alert mail is off for you"
        messages.success(request, f"{told}; the daily digest is {'on' if digest else 'off'}.")
        return redirect("alert-list")
    now = timezone.now()
    resolved = (
        Alert.objects.filter(account=access.account, resolved_at__gte=now - timedelta(days=30))
        .select_related("pool")
        .order_by("-resolved_at")[:50]
    )
    return render(
        request,
        "scaling/alert_list.html",
        {
            "nav": "alerts",
            "open_alerts": account_open_alerts(access.account),
            "resolved": resolved,
            "mail": User.objects.filter(pk=user.pk).values("alert_emails", "alert_digest").first(),
            "tz": access.account.timezone,
        },
    )
