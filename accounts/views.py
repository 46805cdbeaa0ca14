"""The customer area's doors: sign in and out, password reset, and the account switcher."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.access import SESSION_KEY, signed_in_user
from accounts.forms import AccountSwitchForm, SignInForm


class SignInView(auth_views.LoginView):
    template_name = "account/sign_in.html"
    form_class = SignInForm
    redirect_authenticated_user = True


class SignOutView(auth_views.LogoutView):
    pass


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")


@require_POST
@login_required
def account_switch(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    form = AccountSwitchForm(request.POST, user=user) if user is not None else None
    if form is None or not form.is_valid():
        # Someone else's account (or none at all): as if it did not exist.
        raise Http404("No such account.")
    account = form.cleaned_data["account"]
    request.session[SESSION_KEY] = account.pk
    messages.info(request, f"You are now looking at {account.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = str(reverse_lazy("settings-index"))
    return redirect(target)
