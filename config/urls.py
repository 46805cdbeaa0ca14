from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from scaling.metrics import metrics
from scaling.readiness import readyz

admin.site.site_header = "RingPool back office"
admin.site.site_title = "RingPool"
admin.site.index_title = "Accounts, pools, numbers and scaling"
# The app list is on the home page; the sidebar copy of it would take a quarter of a 1,366 px screen.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("admin/", admin.site.urls),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
    path("", include("accounts.urls")),
    path("", include("ringpools.urls")),
    path("", include("scaling.urls")),
    path("", RedirectView.as_view(pattern_name="demo-landing", permanent=False)),
]

# Whatever no view answers keeps the format of the endpoint it was meant for (ringpools/errors.py).
handler400 = "ringpools.errors.bad_request"
handler403 = "ringpools.errors.forbidden"
handler404 = "ringpools.errors.not_found"
handler500 = "ringpools.errors.server_error"
