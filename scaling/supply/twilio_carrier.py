"""The Twilio carrier (RINGPOOL_CARRIER=twilio): search, buy, look up and release numbers.

Credentials come from the environment (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN). Every purchase carries
our request id as its friendly name, so reconciliation can find a purchase whose answer was lost.

Errors: no answer (connection error, time-out), 429 and 5xx are `TransientCarrierError` (a purchase
that timed out may have succeeded: the outbox reconciles it); any other refusal is `CarrierError`
with Twilio's code and message, which the failed event shows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ringpools import phone
from ringpools.choices import NumberType
from scaling.supply.carrier import (
    AvailableNumber,
    CarrierError,
    NumberUnavailableError,
    OffersSearch,
    PurchasedNumber,
    TransientCarrierError,
)

# Twilio's list prices for US numbers (per month); the bill shows these until the invoice says otherwise.
MONTHLY_COST: dict[str, Decimal] = {NumberType.LOCAL: Decimal("1.15"), NumberType.TOLL_FREE: Decimal("2.15")}
COUNTRY = "US"
# A search answers one of the first numbers offered, at random, so concurrent buyers rarely collide.
OFFERED = 20
# Twilio's error for a number sold to someone else between the search and the purchase.
NOT_AVAILABLE = 21422


class TwilioCarrier(OffersSearch):
    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        voice_url: str = "",
        timeout: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ImproperlyConfigured(
                "RINGPOOL_CARRIER=twilio needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
            )
        # Twilio's client retries nothing by itself; a slow answer must not hold a grow pass for long.
        self.client = Client(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        self.voice_url = voice_url

    def offers(
        self,
        *,
        number_type: str,
        area_code: str = "",
        region: str = "",
        exclude: Collection[str] = (),
        limit: int = OFFERED,
    ) -> list[AvailableNumber]:
        country = self.client.available_phone_numbers(COUNTRY)
        criteria: dict[str, Any] = {"voice_enabled": True, "limit": limit + len(exclude)}
        with _mapped_errors("search"):
            if number_type == NumberType.TOLL_FREE:
                found = country.toll_free.list(**criteria)
            else:
                if area_code:
                    criteria["area_code"] = int(area_code)
                if region:
                    criteria["in_region"] = region  # a state code (scaling.supply.choice)
                found = country.local.list(**criteria)
        return [_available(offer) for offer in found if offer.phone_number not in exclude][:limit]

    def purchase(self, available: AvailableNumber, *, account_id: int, friendly_name: str) -> PurchasedNumber:
        options = {"phone_number": available.number, "friendly_name": friendly_name}
        if self.voice_url:
            options.update(voice_url=self.voice_url, voice_method="POST")
        with _mapped_errors("purchase"):
            bought = self.client.incoming_phone_numbers.create(**options)
        return _purchased(bought, region=available.region)

    def find_purchased(self, *, friendly_name: str) -> PurchasedNumber | None:
        with _mapped_errors("lookup"):
            found = self.client.incoming_phone_numbers.list(friendly_name=friendly_name, limit=1)
        return _purchased(found[0]) if found else None

    def list_purchased(self) -> Iterator[PurchasedNumber]:
        with _mapped_errors("list"):
            # The whole list, read before anything is concluded from it (a partial list proves nothing).
            held = list(self.client.incoming_phone_numbers.stream(page_size=1000))
        for resource in held:
            yield _purchased(resource)

    def release(self, carrier_ref: str) -> None:
        try:
            with _mapped_errors("release"):
                self.client.incoming_phone_numbers(carrier_ref).delete()
        except _NotFound:
            return  # released already (an earlier attempt whose answer was lost): idempotent


class _NotFound(CarrierError):
    pass


@contextmanager
def _mapped_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except TwilioRestException as error:
        message = f"Twilio {operation} refused ({error.status}, code {error.code}): {error.msg}"
        if error.status == 429 or error.status >= 500:
            raise TransientCarrierError(message) from error
        if error.status == 404:
            raise _NotFound(message) from error
        if error.code == NOT_AVAILABLE:
            raise NumberUnavailableError(message) from error
        raise CarrierError(message) from error
    except (requests.Timeout, requests.ConnectionError) as error:
        kind = error.__class__.__name__
        raise TransientCarrierError(f"Twilio {operation} got no answer: {kind}") from error


def _available(offer: Any) -> AvailableNumber:
    facts = phone.facts(offer.phone_number)
    return AvailableNumber(
        number=facts.e164,
        number_type=facts.number_type,
        area_code=facts.area_code,
        region=offer.region or facts.region,
        monthly_cost=MONTHLY_COST[facts.number_type],
    )


def _purchased(resource: Any, *, region: str = "") -> PurchasedNumber:
    facts = phone.facts(resource.phone_number)
    return PurchasedNumber(
        number=facts.e164,
        number_type=facts.number_type,
        area_code=facts.area_code,
        region=region or facts.region,
        monthly_cost=MONTHLY_COST[facts.number_type],
        carrier_ref=resource.sid,
        friendly_name=getattr(resource, "friendly_name", "") or "",
    )


def twilio_carrier_from_settings() -> TwilioCarrier:
    base = settings.RINGPOOL_PUBLIC_BASE_URL.rstrip("/")
    return TwilioCarrier(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        voice_url=f"{base}/webhooks/calls" if base else "",
        timeout=settings.RINGPOOL_CARRIER_TIMEOUT_SECONDS,
    )
