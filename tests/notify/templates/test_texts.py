"""What every message shares: status labels from the enum, escaping, money in the reader's locale."""

from __future__ import annotations

import pytest

from ordercast.models.lifecycle import OrderStatus
from ordercast.notify.templates.texts import Texts, Value


@pytest.mark.parametrize("status", list(OrderStatus))
def test_every_status_has_a_label(status: OrderStatus) -> None:
    label = Texts("en").status(status)
    assert label
    assert label != status.value


def test_the_labels_tell_the_statuses_apart() -> None:
    labels = [Texts("en").status(status) for status in OrderStatus]
    assert len(set(labels)) == len(labels)


def test_a_status_without_a_label_is_shown_as_it_is() -> None:
    assert Texts("en").status("on_hold") == "on_hold"


def test_html_escapes_the_words_and_the_values_and_text_escapes_nothing() -> None:
    message = "{name} & co"
    assert Texts("en").fill(message, name=Value("<Tea>")) == "<b>&lt;Tea&gt;</b> &amp; co"
    assert Texts("en").fill(message, name=Value("<Tea>", "code")) == "<code>&lt;Tea&gt;</code> &amp; co"
    assert Texts("en", "text").fill(message, name=Value("<Tea>")) == "<Tea> & co"


def test_money_is_formatted_for_the_locale_and_an_unreadable_amount_shown_as_given() -> None:
    assert Texts("de").money("1234.5", "EUR") == "1.234,50\xa0€"
    assert Texts("en").money("lots", "EUR") == "lots EUR"
