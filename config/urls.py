from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView

from scaling.metrics import metrics
from scaling.readiness import readyz

# admin.site is config.admin_site.RingPoolAdminSite (INSTALLED_APPS).
# The product's mark (a phone handset on the pools' blue), served at the path browsers ask for.
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" '
    'fill="#2f5fb3"/><path fill="#fff" d="M11.6 7.5c.6-.2 1.3 0 1.6.6l1.6 3.3c.3.6.1 1.3-.4 1.7l-1.7 '
    "1.3a11.5 11.5 0 0 0 5.2 5.2l1.3-1.7c.4-.5 1.1-.7 1.7-.4l3.3 1.6c.6.3.8 1 .6 1.6l-.8 2.5c-.3.8-1 "
    '1.3-1.9 1.3C13.9 24.5 7.5 18.1 7.5 10.9c0-.9.5-1.6 1.3-1.9z"/></svg>'
)


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", include("accounts.urls")),
    path("", include("ringpools.urls")),
    path("", include("scaling.urls")),
    # The customers' area (its sign-in page for a visitor not signed in).
    path("", RedirectView.as_view(pattern_name="pool-list", permanent=False)),
]

# Whatever no view answers keeps the format of the endpoint it was meant for (ringpools/errors.py).
handler400 = "ringpools.errors.bad_request"
handler403 = "ringpools.errors.forbidden"
handler404 = "ringpools.errors.not_found"
handler500 = "ringpools.errors.server_error"
