"""Message catalogs: the template lists every message, and a compiled catalog translates them."""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from ordercast.notify.templates.customer import status_notice
from ordercast.notify.templates.texts import LOCALES_DIR, Shop, Texts

ROOT = Path(__file__).resolve().parents[2]


def test_the_catalog_template_has_every_message() -> None:
    """After changing a message: pybabel extract (see the README) and commit ordercast.pot."""
    with (LOCALES_DIR / "ordercast.pot").open("rb") as file:
        template = {message.id for message in read_po(file) if message.id}
    extracted = {
        message
        for package in ("notify", "bot")
        for _, _, message, _, _ in extract_from_dir(ROOT / "ordercast" / package, keywords={"N_": None})
    }
    assert extracted == template


def test_a_compiled_catalog_translates_the_words_but_not_the_values() -> None:
    catalog = Catalog(locale="eo", domain="ordercast")
    catalog.add("Payment received", "Pago ricevita")
    catalog.add(
        "We've received {total} for order {number}. We'll confirm it shortly and start preparing it.",
        "Ni ricevis {total} por mendo {number}.",
    )
    target = LOCALES_DIR / "eo" / "LC_MESSAGES"
    target.mkdir(parents=True)
    try:
        with (target / "ordercast.mo").open("wb") as file:
            write_mo(file, catalog)
        order = {"number": "A1B2C3D4", "total": "9.90", "currency": "EUR", "updated_at": "2026-12-01T10:00:00.000000Z"}
        notice = status_notice({"order": order, "to": "paid"}, locale="eo", shop=Shop())
        assert notice is not None
        assert notice.title == "Pago ricevita"
        assert notice.body == "Ni ricevis <b>9,90\u202f€</b> por mendo <b>#A1B2C3D4</b>."
        assert Texts("eo").gettext("Delivered") == "Delivered"  # untranslated messages stay English
    finally:
        (target / "ordercast.mo").unlink(missing_ok=True)
        target.rmdir()
        target.parent.rmdir()
