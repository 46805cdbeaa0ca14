"""Admin: the month-end prune preview for a pool and for an account, pins, and the bill.

The preview is drawn by `scaling.pruning.prune_plans`, the function the real run uses, so what staff
see here is what the month's run removes if nothing changes meanwhile. Staff only (the admin site's
`admin_view`); pin and unpin are POST forms with CSRF, through the audited pin services.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.models import Account
from ringpools.models import PromoNumber, RingPool
from scaling.choices import ScalingPolicy
from scaling.models import AutoScalingSettings, MonthlyPrune
from scaling.pruning.bill import account_bill
from scaling.pruning.plans import PoolPrunePlan, account_prune_preview, pool_prune_preview
from scaling.pruning.renewal import RENEWAL_NOTICE, RenewalVerdict, renewal_preview
from scaling.pruning.rule import PRUNE_SHARE_PERCENT
from scaling.services import promo_number_pin, promo_number_unpin

TEMPLATE = "admin/scaling/prune_preview.html"


class PrunePreviewAdminMixin:
    """Adds the prune preview pages and a "Month-end prune" panel to the pool admin."""

    admin_site: admin.AdminSite

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pool_id>/prune/", view(self.pool_prune_view), name="ringpools_ringpool_prune"),
            path(
                "prune/account/<int:account_id>/",
                view(self.account_prune_view),
                name="ringpools_ringpool_prune_account",
            ),
            path("prune/number/<int:number_id>/pin/", view(self.pin_view), name="ringpools_ringpool_pin"),
            path(
                "prune/number/<int:number_id>/unpin/", view(self.unpin_view), name="ringpools_ringpool_unpin"
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def prune_panel(self, pool: RingPool) -> str:
        """The "Month-end prune" panel of the pool's page: links to the previews, the last decision."""
        last = MonthlyPrune.objects.filter(pool=pool).order_by("-month").first()
        decided = f"{last.month:%B %Y}: {last.reason}" if last else "no month-end prune yet"
        return format_html(
            '<a href="{}">Prune preview</a> (what would go if the month ended now) · '
            '<a href="{}">for the whole account</a><br><small>Last decided: {}</small>',
            reverse("admin:ringpools_ringpool_prune", args=[pool.pk]),
            reverse("admin:ringpools_ringpool_prune_account", args=[pool.account_id]),
            decided,
        )

    # --- Views ---

    def pool_prune_view(self, request: HttpRequest, pool_id: int) -> HttpResponse:
        pool = get_object_or_404(RingPool, pk=pool_id)
        self._require(request, "ringpools.view_ringpool")
        now = timezone.now()
        plan = pool_prune_preview(pool=pool, now=now)
        bill = account_bill(account=pool.account, now=now)
        title = f"Prune preview: {pool.name}"
        renewals = renewal_preview(pool=pool, now=now)
        return self._render(request, title, pool.account, [plan], bill, now, renewals=renewals)

    def account_prune_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = get_object_or_404(Account, pk=account_id)
        self._require(request, "ringpools.view_ringpool")
        now = timezone.now()
        plans = list(account_prune_preview(account=account, now=now))
        bill = account_bill(account=account, now=now, plans=plans)
        return self._render(request, f"Prune preview: {account.name}", account, plans, bill, now)

    def pin_view(self, request: HttpRequest, number_id: int) -> HttpResponse:
        return self._pin(request, number_id, promo_number_pin, "Pinned")

    def unpin_view(self, request: HttpRequest, number_id: int) -> HttpResponse:
        return self._pin(request, number_id, promo_number_unpin, "Unpinned")

    # --- Helpers ---

    def _pin(self, request: HttpRequest, number_id: int, service: Any, done: str) -> HttpResponse:
        return require_POST(self._pin_post)(request, number_id, service, done)

    def _pin_post(self, request: HttpRequest, number_id: int, service: Any, done: str) -> HttpResponse:
        self._require(request, "ringpools.change_promonumber")
        number = get_object_or_404(PromoNumber, pk=number_id)
        try:
            service(number=number, actor=request.user, reason=request.POST.get("reason", ""))
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"{done} {number}.")
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:ringpools_ringpool_prune", args=[number.pool_id])
        return HttpResponseRedirect(back)

    @staticmethod
    def _require(request: HttpRequest, permission: str) -> None:
        if not request.user.has_perm(permission):
            raise PermissionDenied

    def _render(
        self,
        request: HttpRequest,
        title: str,
        account: Account,
        plans: list[PoolPrunePlan],
        bill: Any,
        now: Any,
        renewals: list[RenewalVerdict] | None = None,
    ) -> TemplateResponse:
        settings = AutoScalingSettings.objects.filter(account=account).first()
        context = {
            "renewals": renewals,
            "adaptive": settings is not None and settings.policy == ScalingPolicy.ADAPTIVE,
            "renewal_notice_minutes": int(RENEWAL_NOTICE.total_seconds() // 60),
            **self.admin_site.each_context(request),
            "title": title,
            "account": account,
            "plans": plans,
            "bill": bill,
            "now": now,
            "local_now": now.astimezone(account.timezone),
            "can_pin": request.user.has_perm("ringpools.change_promonumber"),
            "share_percent": PRUNE_SHARE_PERCENT,
            "opts": RingPool._meta,
        }
        response = TemplateResponse(request, TEMPLATE, context)
        # Every time on the page in the account's zone (the date filter converts to the active zone).
        with timezone.override(account.timezone):
            response.render()
        return response
