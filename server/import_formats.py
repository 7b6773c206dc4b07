"""Price history files as raw tick items: the layouts we meet, one shape out. No I/O here:
tables come in as rows of cells (server/import_files.py reads CSV, XLSX and NDJSON), records
go out, and server/ticks.py validates each record's item exactly like an HTTP tick.

Layouts, told apart by the header row (one of the first ``HEADER_SEARCH`` rows):

* ``ticks``: one price per row. Our tick CSV (``date`` or ``ts``, ``commodity``, ``market``,
  ``province``, ``price``) and PIHPS' long export (names instead of ids, a ``city`` column, as
  ../shared/data/pihps-jabar); Indonesian headers (tanggal, komoditas, pasar, provinsi, harga)
  too. Names become ids through the catalog (name or alias), else as a slug.
* ``monthly``: the provincial monthly table (``Lokasi``, ``Komoditas``, ``Januari 2018`` ...):
  market ``rata-rata-<province>``, reported on the 15th.
* ``pihps``: the PIHPS website's "Tabel Harga" export: ``No``, ``Komoditas (Rp)``, then one
  column per date spelled ``01/ 04/ 2024`` (or a month, ``Jan 2019``: the 15th); prices as text
  with thousands commas (``16,200``), ``-`` for not reported. Its rows are commodities when the
  table is "by region" (then give the market) or regions when it is "by commodity" (then give
  the commodity): the export names that fixed side only in the site's form, not in the file.
  Its group rows (``No`` in roman numerals: Beras, Cabai Rawit) average their items (``1``,
  ``2``...): where an item names the same series and has a price that day, the item's wins.

A day's price is placed at 10:00 WIB, as the demo feed does (detectors/recorded.py).

>>> from base.catalog import load_catalog
>>> layout = find_layout([["No", "Komoditas (Rp)", "01/ 04/ 2024", "02/ 04/ 2024"]], load_catalog(),
...                      Options(market="pasar-agung"))[0]
>>> row = ["1", "Cabai Rawit Merah", "60,000", "-"]
>>> [(r.column, r.item and (r.item["commodity"], r.item["price"])) for r in layout.records(2, row)]
[('01/ 04/ 2024', ('cabai-rawit-merah', 60000.0)), ('02/ 04/ 2024', None)]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast
from collections.abc import Iterable, Iterator

from detectors.recorded import MONTHS_ID, day_ts
from base.catalog import Catalog, slugify

HEADER_SEARCH = 10  # rows above the header (a title, a blank line) that are skipped
MAX_COLUMNS = 20_000  # a daily table of 50 years is 18,000 columns
MONTHS = {**MONTHS_ID, **{name[:3]: n for name, n in MONTHS_ID.items()},
          "may": 5, "aug": 8, "oct": 10, "dec": 12, "agt": 8}
DAY = re.compile(r"(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})")
ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
MONTH = re.compile(r"([A-Za-z]+)\.?\s+(\d{4})")
THOUSANDS = re.compile(r"\d{1,3}([,.])\d{3}(\1\d{3})*")
DECIMAL_COMMA = re.compile(r"\d{1,3}(\.\d{3})*,\d{1,2}|\d+,\d{1,2}")
DECIMAL_POINT = re.compile(r"\d{1,3}(,\d{3})+\.\d+")
EMPTY = ("", "-", "--", "n/a", "na")
ROMAN = re.compile(r"[IVXL]+")
# Column names of the ticks layout, ours first then PIHPS' and Indonesian ones.
ALIASES = {
    "date": ("date", "tanggal", "tgl"), "ts": ("ts", "timestamp", "waktu"),
    "commodity": ("commodity", "komoditas", "komoditi"), "market": ("market", "pasar", "nama pasar"),
    "province": ("province", "provinsi"), "price": ("price", "harga", "harga (rp)"),
}


class LayoutError(ValueError):
    """The file is no layout we know, or lacks what its layout needs: nothing of it is read."""


@dataclass(frozen=True)
class Options:
    """What a wide PIHPS table does not say itself (see the module doc)."""

    commodity: str | None = None
    market: str | None = None
    province: str | None = None


@dataclass
class Record:
    """One price of a file: ``item`` to validate, or ``error`` (refused while reading), or
    neither (an empty cell: not reported that day)."""

    line: int
    column: str | None = None
    item: dict | None = None
    error: dict | None = None
    rank: int = 0  # 1: an aggregate (a PIHPS group row), yielding to a rank-0 price of its series


def find_layout(rows: Iterable[tuple[int, Any]] | list[list], catalog: Catalog,
                options: Options = Options()) -> tuple[Layout, int]:
    """The layout of the first header row among the leading rows, and that row's line."""
    for position, row in enumerate(rows):
        if position >= HEADER_SEARCH:
            break
        line, cells = row if isinstance(row, tuple) else (position + 1, row)
        if not isinstance(cells, list):
            continue  # a line that could not be read, above the header
        if len(cells) > MAX_COLUMNS:
            raise LayoutError(f"{len(cells)} columns: at most {MAX_COLUMNS}")
        names = [_text(cell).lower() for cell in cells]
        for kind in (Monthly, Wide, Ticks):
            layout = kind.read_header(cells, names, catalog, options)
            if layout is not None:
                return layout, line
    raise LayoutError("no header row found: expected a tick CSV (date, commodity, market, province, price), "
                      "a PIHPS table (No, Komoditas (Rp), dates) or the monthly table (Lokasi, Komoditas, months)")


class Layout:
    name = ""

    def __init__(self, catalog: Catalog, options: Options):
        self.catalog = catalog
        self.options = options
        self._names: dict[tuple[str, str], str | None] = {}

    def records(self, line: int, cells: list) -> Iterator[Record]:
        raise NotImplementedError

    def commodity(self, text: str) -> str | None:
        return (self._resolve("commodity", text, self.catalog.resolve_commodity) or slugify(text)) if text else None

    def province(self, text: str) -> str | None:
        return self._resolve("province", text, self.catalog.resolve_province)

    def _resolve(self, kind: str, text: str, resolve) -> str | None:
        key = (kind, text)
        if key not in self._names:
            if len(self._names) > 10_000:  # a file of a million distinct names stays bounded
                self._names.clear()
            self._names[key] = resolve(text) if text else None
        return self._names[key]

    def home_province(self, market: str) -> str | None:
        known = self.catalog.markets.get(market)
        return known.province if known else None


class Ticks(Layout):
    name = "ticks"

    def __init__(self, columns: dict[str, int], catalog: Catalog, options: Options):
        super().__init__(catalog, options)
        self.columns = columns

    @classmethod
    def read_header(cls, cells: list, names: list[str], catalog: Catalog, options: Options) -> Ticks | None:
        columns = {}
        for field, aliases in ALIASES.items():
            found = next((i for i, name in enumerate(names) if name in aliases), None)
            if found is not None:
                columns[field] = found
        if {"commodity", "market", "price"} <= set(columns) and ({"date", "ts"} & set(columns)):
            return cls(columns, catalog, options)
        return None

    def cell(self, cells: list, field: str) -> Any:
        index = self.columns.get(field)
        return cells[index] if index is not None and index < len(cells) else None

    def records(self, line: int, cells: list) -> Iterator[Record]:
        if not any(_text(cell) for cell in cells):
            return  # a blank line
        price, error = parse_price(self.cell(cells, "price"))
        if error:
            yield Record(line, error=error)
            return
        if price is None:
            yield Record(line)
            return
        ts, error = self._ts(cells)
        if error:
            yield Record(line, error=error)
            return
        market = slugify(_text(self.cell(cells, "market"))) or None
        province_text = _text(self.cell(cells, "province"))
        province = ((self.province(province_text) or province_text) if province_text
                    else self.home_province(market or ""))
        yield Record(line, item={"commodity": self.commodity(_text(self.cell(cells, "commodity"))),
                                 "market": market, "province": province, "price": price, "ts": ts})

    def _ts(self, cells: list) -> tuple[Any, dict | None]:
        raw = self.cell(cells, "ts")
        if _text(raw):
            if isinstance(raw, (int, float, datetime)):
                return (raw.timestamp() if isinstance(raw, datetime) else raw), None
            text = _text(raw)
            return (float(text) if _is_number(text) else text), None
        raw = self.cell(cells, "date")
        day = parse_day(raw)
        if day is None:
            return None, _error("date", "bad_date", f"date {_text(raw)[:40]!r} is not a day "
                                                     f"(2024-04-01 or 01/04/2024)")
        return day_ts(day), None


class Wide(Layout):
    """A label column, then one column per date: the PIHPS export and, by its names, the monthly table."""

    name = "pihps"

    def __init__(self, label: int, dates: list[tuple[int, date, str]], catalog: Catalog, options: Options,
                 number: int | None = None):
        super().__init__(catalog, options)
        self.label = label
        self.dates = dates
        self.number = number  # the No column: I, II... on group rows, 1, 2... on their items

    @classmethod
    def read_header(cls, cells: list, names: list[str], catalog: Catalog, options: Options) -> Wide | None:
        dates = [(i, day, _text(cell)) for i, cell in enumerate(cells) if (day := header_date(cell))]
        dated = {i for i, _, _ in dates}
        numbers = [i for i, name in enumerate(names) if name.rstrip(".") in ("no", "nomor")]
        labels = [i for i, name in enumerate(names) if i not in dated and name and i not in numbers]
        if not dates or not labels:
            return None
        return cls(labels[0], dates, catalog, options, numbers[0] if numbers else None)

    def records(self, line: int, cells: list) -> Iterator[Record]:
        label = _text(cells[self.label]) if self.label < len(cells) else ""
        if not label:
            return
        series = self.series(label, cells)
        # A group row (Beras, Cabai Rawit) averages its items: where an item row names the same
        # series (alias) and has a price that day, the item's own price wins.
        number = _text(cells[self.number]) if self.number is not None and self.number < len(cells) else ""
        rank = 1 if ROMAN.fullmatch(number) else 0
        for index, day, column in self.dates:
            price, error = parse_price(cells[index] if index < len(cells) else None)
            if error or price is None:
                yield Record(line, column, error=error)
            else:
                yield Record(line, column, item={**series, "price": price, "ts": day_ts(day)}, rank=rank)

    def series(self, label: str, cells: list) -> dict:
        options = self.options
        if options.commodity:  # rows are regions: provinces (their average) or markets
            province = self.province(label)
            if province:
                return {"commodity": self.commodity(options.commodity), "market": f"rata-rata-{slugify(label)}",
                        "province": province}
            market = slugify(label)
            return {"commodity": self.commodity(options.commodity), "market": market,
                    "province": self._given_province() or self.home_province(market)}
        if options.market:  # rows are commodities of one market
            market = slugify(options.market)
            return {"commodity": self.commodity(label), "market": market,
                    "province": self._given_province() or self.home_province(market)}
        if self.catalog.resolve_commodity(label):
            raise LayoutError(f"the rows of this PIHPS table are commodities ({label!r}): say which market "
                              f"they are for (--market, and --province unless the catalog knows the market)")
        raise LayoutError(f"the rows of this PIHPS table are regions ({label!r}): say which commodity "
                          f"they price (--commodity)")

    def _given_province(self) -> str | None:
        given = self.options.province
        return (self.province(given) or given) if given else None


class Monthly(Wide):
    name = "monthly"
    commodity_column: int  # set by read_header

    @classmethod
    def read_header(cls, cells: list, names: list[str], catalog: Catalog, options: Options) -> Monthly | None:
        if "lokasi" not in names or "komoditas" not in names:
            return None
        layout = cast("Monthly | None", super().read_header(cells, names, catalog, options))  # cls(...) made it
        if layout is None:
            return None
        layout.commodity_column = names.index("komoditas")
        layout.label = names.index("lokasi")
        return layout

    def series(self, label: str, cells: list) -> dict:
        commodity = _text(cells[self.commodity_column]) if self.commodity_column < len(cells) else ""
        return {"commodity": self.commodity(commodity), "market": f"rata-rata-{slugify(label)}",
                "province": self.province(label) or slugify(label)}


def json_record(line: int, value: Any) -> Record:
    """One NDJSON line (already decoded): a tick object; ``date`` may stand for ``ts``."""
    if isinstance(value, dict) and "date" in value and value.get("ts") is None:
        day = parse_day(value["date"])
        if day is None:
            return Record(line, error=_error("date", "bad_date", f"date {_text(value['date'])[:40]!r} is not a day"))
        value = {**{k: v for k, v in value.items() if k != "date"}, "ts": day_ts(day)}
    return Record(line, item=value)


def parse_price(value: Any) -> tuple[float | None, dict | None]:
    """A price cell: a number, or text like ``60000``, ``60,000``, ``60.000``, ``Rp 60.000``;
    empty or ``-`` is no price (not reported). Three-digit groups are thousands, never decimals:
    no food costs Rp 60.5 per kg."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return None, _error("price", "not_a_number", "price is not a number")
    if isinstance(value, (int, float)):
        return float(value), None
    text = _text(value)
    if text.lower() in EMPTY:
        return None, None
    cleaned = text.replace("Rp", "").replace("rp", "").replace(" ", "").replace("\u00a0", "")
    if THOUSANDS.fullmatch(cleaned):
        cleaned = re.sub(r"[,.]", "", cleaned)
    elif DECIMAL_COMMA.fullmatch(cleaned):  # 12.500,50 or 12500,50
        cleaned = cleaned.replace(".", "").replace(",", ".")
    elif DECIMAL_POINT.fullmatch(cleaned):  # 12,500.50
        cleaned = cleaned.replace(",", "")
    try:
        return float(cleaned), None
    except ValueError:
        return None, _error("price", "not_a_number", f"price {text[:40]!r} is not a number")


def parse_day(value: Any) -> date | None:
    """``2024-04-01``, ``01/04/2024``, ``01/ 04/ 2024`` (day first, as Indonesia writes dates),
    or a spreadsheet's own date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    match = ISO_DAY.match(text)
    parts = (int(match[1]), int(match[2]), int(match[3])) if match else None
    if parts is None and (match := DAY.fullmatch(text)):
        parts = (int(match[3]), int(match[2]), int(match[1]))
    try:
        return date(*parts) if parts else None
    except ValueError:
        return None


def header_date(value: Any) -> date | None:
    """A date column's header: a day (``01/ 04/ 2024``) or a month (``Januari 2018``, ``Jan 2019``:
    the 15th, as monthly averages are placed)."""
    day = parse_day(value)
    if day is not None:
        return day
    match = MONTH.fullmatch(_text(value))
    month = MONTHS.get(match[1].lower()) if match else None
    return date(int(match[2]), month, 15) if match and month else None


def _error(field: str, reason: str, detail: str) -> dict:
    return {"field": field, "reason": reason, "detail": detail}


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value).strip()


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
