"""Template filters that put the product's records in people's words: who did it, and an event's
figures as a small table (coded values such as the prune rule in words, ids and request ids left out)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from accounts.display import figures_table, person_name
from scaling.pruning.rule import PRUNE_RULE_WORDS

register = template.Library()

FIGURE_WORDS = {"rule": {rule.value: words for rule, words in PRUNE_RULE_WORDS.items()}}


@register.filter
def person(user: Any) -> str:
    return person_name(user)


@register.filter
def figures(values: dict[str, Any] | None) -> SafeString | str:
    return figures_table(values, FIGURE_WORDS)
