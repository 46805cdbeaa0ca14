"""The form of the page Settings → Network → RingPool Auto-Scaling. Rules live in the service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django import forms

from accounts.models import Account
from ringpools.models import Campaign, DestinationNumber
from scaling.choices import Scope
from scaling.models import AutoScalingSettings


class AutoScalingSettingsForm(forms.Form):
    enable_for_new_pools = forms.BooleanField(
        required=False,
        label="Enable auto-scaling for each new RingPool",
        help_text="New RingPools grow on overflow and are pruned at month end.",
    )
    include_overflow_number = forms.BooleanField(
        required=False,
        label="Include an overflow number in each new RingPool",
        help_text="Off: visitors turned away see your destination number, and those calls are not tracked.",
    )
    scope = forms.ChoiceField(choices=Scope.choices, widget=forms.RadioSelect, label="Scope")
    campaigns = forms.ModelMultipleChoiceField(
        queryset=Campaign.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    destination_numbers = forms.ModelMultipleChoiceField(
        queryset=DestinationNumber.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    # When the form was drawn: saving over a newer change is refused (see the service).
    seen_updated_at = forms.CharField(
        widget=forms.HiddenInput, error_messages={"required": "This form is damaged; reload the page."}
    )

    def __init__(self, *args: Any, account: Account, current: AutoScalingSettings, **kwargs: Any) -> None:
        campaigns = Campaign.objects.filter(account=account).order_by("name")
        selected = list(campaigns) if current.scope == Scope.ALL_CAMPAIGNS else list(current.campaigns.all())
        kwargs.setdefault(
            "initial",
            {
                "enable_for_new_pools": current.enable_for_new_pools,
                "include_overflow_number": current.include_overflow_number,
                "scope": current.scope,
                # With every campaign in scope, every switch is on.
                "campaigns": selected,
                "destination_numbers": list(current.destination_numbers.all()),
                "seen_updated_at": current.updated_at.isoformat(),
            },
        )
        super().__init__(*args, **kwargs)
        self.current = current
        self.scope_narrowed = False
        cast(forms.ModelMultipleChoiceField, self.fields["campaigns"]).queryset = campaigns
        cast(
            forms.ModelMultipleChoiceField, self.fields["destination_numbers"]
        ).queryset = DestinationNumber.objects.filter(account=account).order_by("label", "number")
        self.fields["campaigns"].error_messages["invalid_choice"] = (
            "%(value)s is not one of this account's campaigns. Nothing was changed."
        )
        self.fields["destination_numbers"].error_messages["invalid_choice"] = (
            "%(value)s is not one of this account's destination numbers. Nothing was changed."
        )
        self.fields["campaigns"].error_messages["invalid_pk_value"] = self.fields["campaigns"].error_messages[
            "invalid_choice"
        ]
        self.fields["destination_numbers"].error_messages["invalid_pk_value"] = self.fields[
            "destination_numbers"
        ].error_messages["invalid_choice"]

    def clean_seen_updated_at(self) -> datetime:
        value = self.cleaned_data["seen_updated_at"]
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise forms.ValidationError("This form is damaged; reload the page.") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if "campaigns" not in cleaned:
            return cleaned
        campaigns = cast(forms.ModelMultipleChoiceField, self.fields["campaigns"])
        every = (
            set(campaigns.queryset.values_list("pk", flat=True)) if campaigns.queryset is not None else set()
        )
        all_on = {c.pk for c in cleaned["campaigns"]} == every
        if cleaned.get("scope") == Scope.ALL_CAMPAIGNS and not all_on:
            # A campaign switch turned off while every campaign was in scope: the switches edit
            # the selection underneath, so the scope narrows to the campaigns left on.
            cleaned["scope"] = Scope.SELECTED_CAMPAIGNS
            self.scope_narrowed = True
        elif (
            cleaned.get("scope") != Scope.SELECTED_CAMPAIGNS
            and all_on
            and (self.current.scope == Scope.ALL_CAMPAIGNS)
        ):
            # The switches were drawn all on because every campaign was in scope, and nobody touched
            # them: that says nothing about the list of campaigns kept for a later selective scope.
            cleaned["campaigns"] = list(self.current.campaigns.all())
        return cleaned
