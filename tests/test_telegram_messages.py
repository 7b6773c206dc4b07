"""Telegram message text (workers/messages.py): escaping, numbers, times, digests, splitting."""
from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from base.catalog import Market, load_catalog
from workers.messages import (
    TELEGRAM_LIMIT, alert_block, pack, render_notification, visible_len,
)

CATALOG = load_catalog()
TS = 1719800000.0  # 2024-07-01 02:13:20 UTC


def alert(**overrides) -> dict:
    event = {
        "type": "alert", "id": "1719800001234-0", "key": "price-spike/cabai-rawit-merah/pasar-agung",
        "rule": "price-spike", "state": "firing", "severity": "warning",
        "commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32",
        "price": 387500.0, "ts": TS, "started_at": TS, "resolved_at": None,
        "expected": {"level": 60000.0, "lo": 52000.0, "hi": 68000.0},
        "detectors": ["crossmarket", "zscore"],
        "reasons": {"zscore": "z=5.1 vs mean Rp 60.000 over 30 ticks", "crossmarket": "premium 4.2 MAD"},
        "summary": "Harga melonjak / price spike", "routes": {"telegram": [], "topics": True},
    }
    event.update(overrides)
    return event


class TagBalance(HTMLParser):
    """Checks that every tag opened in a text is closed in it, in order (Telegram's rule)."""

    ALLOWED = {"b", "i", "a", "code", "pre", "u", "s"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.ALLOWED:
            self.errors.append(f"tag <{tag}> not allowed")
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def assert_valid_html(text: str) -> None:
    parser = TagBalance()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack, text)


def weird_catalog():
    """The real catalog with names full of HTML's special characters."""
    commodities = dict(CATALOG.commodities)
    commodities["cabai-rawit-merah"] = dataclasses.replace(
        commodities["cabai-rawit-merah"], name_id="Cabai <Rawit> & \"Merah\"")
    provinces = dict(CATALOG.provinces)
    provinces["32"] = dataclasses.replace(provinces["32"], name="Jawa <Barat> & Co")
    markets = dict(CATALOG.markets)
    markets["pasar-agung"] = Market(id="pasar-agung", name="Pasar <b>Agung</b> & Sons", province="32",
                                    city="Depok")
    return dataclasses.replace(CATALOG, commodities=commodities, provinces=provinces, markets=markets)


def test_firing_message_has_every_part_a_reader_needs():
    [message] = render_notification([alert()], CATALOG, "https://pw.example", "n1")
    text = message.text
    assert "SIAGA" in text and "Harga melonjak / price spike" in text
    assert "<b>Cabai Rawit Merah</b> di <b>Pasar Agung</b>, Jawa Barat" in text
    assert "<b>Rp 387.500/kg</b>" in text
    assert "+545,8% dari biasanya Rp 60.000" in text
    assert "Detektor: crossmarket, zscore" in text
    assert "• zscore: z=5.1 vs mean Rp 60.000 over 30 ticks" in text
    assert "• crossmarket: premium 4.2 MAD" in text
    assert "1 Jul 2024 09:13 WIB" in text
    assert 'href="https://pw.example/#commodity=cabai-rawit-merah&amp;province=32&amp;market=pasar-agung"' in text
    assert message.silent is False
    assert message.buttons == ((("Bisukan 1 jam", "m:n1"), ("Ack", "a:n1")),)
    assert_valid_html(text)


def test_every_interpolated_value_is_escaped():
    event = alert(summary="<script>alert('x')</script> & more",
                  reasons={"zscore": "z>5 & <rising>"}, detectors=["zscore"], severity="<critical>")
    [message] = render_notification([event], weird_catalog(), "https://pw.example/a?b=<c>", "n1")
    text = message.text
    assert "Cabai &lt;Rawit&gt; &amp; &quot;Merah&quot;" in text
    assert "Pasar &lt;b&gt;Agung&lt;/b&gt; &amp; Sons" in text
    assert "Jawa &lt;Barat&gt; &amp; Co" in text
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "z&gt;5 &amp; &lt;rising&gt;" in text
    assert "&lt;CRITICAL&gt;" in text
    # Nothing raw: with the markup we wrote removed, no <, > or bare & remains.
    stripped = re.sub(r"</?(b|i|code|a)( [^>]*)?>", "", text)
    assert "<" not in stripped and ">" not in stripped
    assert not re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", stripped)
    assert_valid_html(text)


def test_resolved_message_says_value_at_resolution_and_how_long_it_lasted():
    event = alert(state="resolved", price=61000.0, fired_price=387500.0, resolved_at=TS + 8100,
                  duration=8100.0, ts=TS + 8100)
    [message] = render_notification([event], CATALOG, "", "n2")
    assert "SELESAI" in message.text
    assert "Harga saat selesai <b>Rp 61.000/kg</b>, berlangsung 2 jam 15 menit" in message.text
    assert "Harga saat mulai Rp 387.500/kg" in message.text
    assert "1 Jul 2024 11:28 WIB" in message.text
    assert "Buka dasbor" not in message.text  # no public URL, no link
    assert message.buttons == ((("Bisukan 1 jam", "m:n2"),),)  # nothing left to acknowledge


def test_duration_is_computed_when_the_event_does_not_carry_it():
    event = alert(state="resolved", price=61000.0, resolved_at=TS + 90061)
    event.pop("duration", None)
    [message] = render_notification([event], CATALOG, "", "n2")
    assert "berlangsung 1 hari 1 jam" in message.text


@pytest.mark.parametrize("code, clock", [("32", "09:13 WIB"), ("51", "10:13 WITA"), ("94", "11:13 WIT"),
                                         ("61", "09:13 WIB")])
def test_local_time_follows_the_province(code, clock):
    event = alert(province=code)
    [message] = render_notification([event], CATALOG, "", "n")
    assert f"1 Jul 2024 {clock}" in message.text


def test_info_is_silent_and_warning_is_not():
    [info] = render_notification([alert(severity="info")], CATALOG, "", "n")
    assert info.silent is True
    [mixed] = render_notification([alert(severity="info"), alert(severity="critical", key="k2")], CATALOG, "", "n")
    assert mixed.silent is False


def test_unknown_names_fall_back_to_ids_and_missing_numbers_do_not_crash():
    event = alert(commodity="durian-montong", market="pasar-entah", province="99", expected=None,
                  price=None, detectors=[], reasons={})
    [message] = render_notification([event], CATALOG, "", "n")
    assert "<b>durian-montong</b> di <b>pasar-entah</b>, 99" in message.text
    assert "Harga <b>–</b>" in message.text
    assert "dari biasanya" not in message.text


def test_a_burst_becomes_one_digest_with_one_line_per_alert():
    events = [alert(key=f"price-spike/cabai-rawit-merah/m{i}", market=f"m{i}") for i in range(12)]
    events.append(alert(key="x/resolved", state="resolved", price=60000.0, duration=3600.0))
    messages = render_notification(events, CATALOG, "https://pw.example", "n9")
    assert len(messages) == 1
    lines = messages[0].text.split("\n")
    assert lines[0] == "📣 <b>13 pemberitahuan harga</b> (12 siaga, 1 selesai)"
    assert sum(1 for line in lines if line.startswith("⚠️ <b>Cabai Rawit Merah</b>")) == 12
    assert any(line.startswith("✅ ") and "kembali <b>Rp 60.000/kg</b> setelah 1 jam" in line for line in lines)
    # The alerts share their commodity and province only: the link opens those, no one market.
    assert lines[-1] == '<a href="https://pw.example/#commodity=cabai-rawit-merah&amp;province=32">Buka dasbor</a>'
    assert_valid_html(messages[0].text)


def test_long_digest_is_split_between_alerts_and_never_mid_tag():
    events = [alert(key=f"k{i}", market=f"pasar-{'x' * 60}-{i}", summary="s") for i in range(200)]
    messages = render_notification(events, weird_catalog(), "https://pw.example", "n")
    assert len(messages) > 1
    for message in messages:
        assert visible_len(message.text) <= TELEGRAM_LIMIT
        assert_valid_html(message.text)
    # Every alert appears exactly once over the parts, in order, each line whole.
    lines = [line for m in messages for line in m.text.split("\n") if line.startswith("⚠️")]
    assert len(lines) == 200
    assert [re.search(r"pasar-x+-(\d+)", line)[1] for line in lines] == [str(i) for i in range(200)]
    # Buttons only on the last part, so one press covers the whole notification.
    assert [bool(m.buttons) for m in messages] == [False] * (len(messages) - 1) + [True]


def test_one_alert_with_everything_maximal_still_fits_one_message():
    huge = "&<>" * 5000
    event = alert(summary=huge, message=huge, detectors=[huge] * 20 + ["ceiling"],
                  reasons={f"d{i}{huge}": huge for i in range(20)})
    catalog = weird_catalog()
    commodities = dict(catalog.commodities)
    commodities["cabai-rawit-merah"] = dataclasses.replace(commodities["cabai-rawit-merah"], name_id=huge)
    catalog = dataclasses.replace(catalog, commodities=commodities)
    [message] = render_notification([event], catalog, "https://pw.example", "n")
    assert visible_len(message.text) <= TELEGRAM_LIMIT
    assert_valid_html(message.text)


def test_pack_breaks_an_oversized_block_between_its_lines():
    block = "\n".join(f"<b>line {i}</b>" for i in range(100))
    texts = pack([block], limit=100)
    assert len(texts) > 1 and all(visible_len(t) <= 100 for t in texts)
    assert "\n".join(texts) == block


def test_alert_block_uses_the_commodity_unit():
    assert CATALOG.commodities["minyak-goreng-curah"].unit == "liter"
    text = alert_block(alert(commodity="minyak-goreng-curah", price=15700.0), CATALOG, "")
    assert "<b>Minyak Goreng Curah</b>" in text and "<b>Rp 15.700/liter</b>" in text


def href(text: str) -> str:
    match = re.search(r'<a href="([^"]*)">Buka dasbor</a>', text)
    assert match, text
    return html.unescape(match[1])


def test_the_dashboard_link_names_the_alerts_own_series_in_the_pages_form():
    [message] = render_notification([alert(commodity="cabai-rawit-merah", market="pasar-agung")],
                                    CATALOG, "https://pw.example/", "n")
    link = urlsplit(href(message.text))
    assert (link.scheme, link.netloc, link.path, link.query) == ("https", "pw.example", "/", "")
    # The page reads its selection from the fragment (static/js/selection.js).
    assert parse_qs(link.fragment) == {"commodity": ["cabai-rawit-merah"], "province": ["32"],
                                       "market": ["pasar-agung"]}


def test_a_digest_of_several_commodities_links_to_the_plain_dashboard():
    events = [alert(), alert(key="k2", commodity="bawang-merah")]
    [message] = render_notification(events, CATALOG, "https://pw.example", "n")
    assert href(message.text) == "https://pw.example/"


def test_the_rules_message_is_the_text_sent_not_the_summary():
    event = alert(message="Cabai Rawit Merah di Pasar Agung naik ke Rp 387.500 (+546% dari biasanya Rp 60.000)")
    [message] = render_notification([event], CATALOG, "", "n")
    first = message.text.split("\n")[0]
    assert first == "⚠️ <b>SIAGA</b> · Cabai Rawit Merah di Pasar Agung naik ke Rp 387.500 " \
                    "(+546% dari biasanya Rp 60.000)"
    assert "Harga melonjak" not in message.text
    resolved = alert(state="resolved", price=61000.0, duration=60.0,
                     message="Kenaikan Cabai Rawit Merah di Pasar Agung selesai: Rp 61.000")
    [done] = render_notification([resolved], CATALOG, "", "n")
    assert done.text.split("\n")[0] == "✅ <b>SELESAI</b> · Kenaikan Cabai Rawit Merah di Pasar Agung selesai: Rp 61.000"


def test_an_event_without_a_message_still_says_its_summary():
    [message] = render_notification([alert()], CATALOG, "", "n")
    assert message.text.split("\n")[0] == "⚠️ <b>SIAGA</b> · Harga melonjak / price spike"


def ceiling_alert(commodity: str, price: float, province: str = "32") -> dict:
    return alert(commodity=commodity, province=province, price=price, detectors=["ceiling"], reasons={})


def test_chilli_above_its_hap_is_told_as_a_reference_price_not_a_legal_ceiling():
    text = alert_block(ceiling_alert("cabai-rawit-merah", 60000.0), CATALOG, "")
    assert "Di atas HAP (harga acuan penjualan) Rp 57.000/kg" in text
    assert "HET" not in text and "eceran tertinggi" not in text


def test_rice_above_its_het_is_told_as_the_legal_ceiling_of_its_zone():
    text = alert_block(ceiling_alert("beras-medium", 14500.0), CATALOG, "")
    assert "Di atas HET (harga eceran tertinggi) Rp 13.500/kg" in text
    papua = alert_block(ceiling_alert("beras-medium", 16000.0, province="94"), CATALOG, "")
    assert "Di atas HET (harga eceran tertinggi) Rp 15.500/kg" in papua
    assert "HAP" not in text
