"""POST /webhooks/calls: the carrier's voice webhook, signed like Twilio's (X-Twilio-Signature)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from accounts.secrets import UndecryptableSecret
from accounts.services import account_carrier_token_confirm
from ringpools.api import ApiError, body_of, database_errors_as_503, error_response, is_chunked, unavailable
from ringpools.calls import IncomingCall, call_record, promo_number_for
from ringpools.models import PromoNumber

log = logging.getLogger(__name__)


def _signed_url(request: HttpRequest) -> str:
    base = settings.RINGPOOL_PUBLIC_BASE_URL.rstrip("/")
    return f"{base}{request.get_full_path()}" if base else request.build_absolute_uri()


def _twiml(response: VoiceResponse, status: int = 200) -> HttpResponse:
    return HttpResponse(str(response), status=status, content_type="text/xml; charset=utf-8")


def routing(number: PromoNumber) -> VoiceResponse:
    twiml = VoiceResponse()
    if number.pool is not None:
        twiml.dial(str(number.pool.destination_number.number))
    else:
        twiml.say("The number you called is not in service.")
        twiml.hangup()
    return twiml


def _signature_valid(number: PromoNumber, request: HttpRequest, params: dict, signature: str) -> bool:
    """Signed by the account's token; or by its pending replacement, which that very signature confirms
    (the carrier has switched); or, for a few minutes after that, by the token it replaced."""
    account = number.account
    url = _signed_url(request)

    def signed_with(token: str) -> bool:
        return bool(token) and RequestValidator(token).validate(url, params, signature)

    if signed_with(account.carrier_auth_token):
        return True
    pending = account.carrier_auth_token_next
    if signed_with(pending):
        account_carrier_token_confirm(account=account, token=pending)
        return True
    return signed_with(account.carrier_auth_token_previous(timezone.now()))


def _form_of(request: HttpRequest) -> QueryDict:
    """The posted form; a chunked body (no Content-Length, which Django reads as empty) is read
    from the WSGI server's stream, within Django's size limit."""
    if not is_chunked(request) or request.content_type != "application/x-www-form-urlencoded":
        return request.POST
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440
    body = body_of(request, limit + 1)
    if len(body) > limit:
        raise RequestDataTooBig("The form is larger than DATA_UPLOAD_MAX_MEMORY_SIZE.")
    return QueryDict(body, encoding=request.encoding)


@csrf_exempt
@database_errors_as_503
def calls(request: HttpRequest) -> HttpResponse:
    """The carrier's voice webhook. Errors are JSON, as every public endpoint's (SPEC §9)."""
    if request.method != "POST":
        response = error_response(405, "method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    try:
        form = _form_of(request)
    except ApiError as error:
        return error.response()
    except (MultiPartParserError, RequestDataTooBig, TooManyFieldsSent, UnicodeDecodeError, OSError):
        # OSError: Django's UnreadablePostError, a body that ended before its Content-Length.
        return error_response(400, "invalid_form", "The body is not a form the webhook can read.")
    if any("\x00" in value for values in form.lists() for value in values[1]):
        return error_response(400, "invalid_form", "Form fields must not contain NUL characters.")
    # A field given twice is refused: the signature and the number's lookup would each read one of
    # its values, and a value placed before the signed one must not choose the account.
    repeated = sorted(name for name, values in form.lists() if len(values) > 1)
    if repeated:
        return error_response(
            400,
            "repeated_field",
            f"Each form field may be sent once: {', '.join(repeated)[:100]} came twice.",
        )
    number = promo_number_for(form.get("To", ""))
    signature = request.headers.get("x-twilio-signature", "")
    params = {name: form.get(name) for name in form}
    try:
        signed = (
            number is not None and bool(signature) and _signature_valid(number, request, params, signature)
        )
    except UndecryptableSecret:
        log.error(
            "Cannot decrypt the carrier token of account %s: check RINGPOOL_ENCRYPTION_KEYS",
            number.account_id if number is not None else None,
        )
        return unavailable()
    if number is None or not signed:
        # %r and a bound: no raw bytes and no megabyte of an unsigned caller's text in one log line.
        log.warning("Refused an unsigned or wrongly signed call webhook for To=%r", form.get("To", "")[:40])
        return error_response(403, "bad_signature", "The request is not signed by the number's account.")
    call_sid = form.get("CallSid", "")
    if not call_sid:
        return error_response(400, "missing_call_sid", "CallSid is required.")
    incoming = IncomingCall(
        call_sid=call_sid[:64],
        from_number=form.get("From", ""),
        to_number=form.get("To", ""),
        status=form.get("CallStatus", ""),
    )
    call_record(number=number, incoming=incoming)
    return _twiml(routing(number))
