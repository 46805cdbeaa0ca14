from django.urls import URLPattern

# The Super-user page (Settings → Network → RingPool Auto-Scaling) mounts here.
urlpatterns: list[URLPattern] = []
