"""Recorded price series read into ticks for a backtest: the formats we meet, one shape out.

* tick CSV: ``date`` (ISO day, reported at 10:00 WIB as the demo feed does) or ``ts`` (epoch
  seconds), ``commodity``, ``market``, ``province``, ``price`` (server/demo_data/*.csv). PIHPS
  exports in that shape (names, not ids; a ``city`` column; province by name) are read too:
  names become ids with ``slugify``, province names codes through the catalog. Empty prices
  (not reported that day) are skipped.
* NDJSON: one tick object per line, ``ts`` or ``date`` as above.
* the wide monthly table (``Lokasi``, ``Komoditas``, then ``Januari 2018`` ...): one series per
  province and commodity, market ``rata-rata-<province>``, reported on the 15th of the month.
* NAB-style ``timestamp,value``: one series, commodity ``nab``, market = the file's name.

Ticks come out sorted by time (then commodity and market), the order the engine would see.

>>> rows = [{"date": "2024-01-02", "commodity": "Cabai Rawit Merah", "province": "Jawa Barat",
...          "city": "Kota Depok", "market": "Pasar Agung", "price": "60000"}]
>>> tick = ticks_from_rows(rows, province_of=lambda name: "32")[0]
>>> tick["commodity"], tick["market"], tick["province"], tick["price"]
('cabai-rawit-merah', 'pasar-agung', '32', 60000.0)
"""
from __future__ import annotations

import csv
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Callable, Iterable

from base.catalog import Catalog, slugify

WIB = timezone(timedelta(hours=7))
REPORT_HOUR = 10  # PIHPS collects prices in the morning (as server/demo.py replays them)
MONTHS_ID = {
    "januari": 1, "februari": 2, "maret": 3, "april": 4, "mei": 5, "juni": 6, "juli": 7,
    "agustus": 8, "september": 9, "oktober": 10, "november": 11, "desember": 12,
}


def day_ts(day: date) -> float:
    return datetime(day.year, day.month, day.day, REPORT_HOUR, tzinfo=WIB).timestamp()


def ticks_from_rows(rows: Iterable[dict], province_of: Callable[[str], str]) -> list[dict]:
    """Tick CSV / NDJSON rows → ticks (see the module doc)."""
    ticks = []
    for row in rows:
        price = row.get("price")
        if price in (None, ""):
            continue
        if row.get("ts") not in (None, ""):
            ts = float(row["ts"])
        else:
            ts = day_ts(date.fromisoformat(str(row["date"])[:10]))
        ticks.append({
            "commodity": slugify(str(row["commodity"])),
            "market": slugify(str(row["market"])),
            "province": province_of(str(row.get("province") or "")),
            "price": float(price),
            "ts": ts,
        })
    return ticks


def ticks_from_wide_monthly(rows: Iterable[dict], catalog: Catalog) -> list[dict]:
    """The pihps-monthly table → one tick per province, commodity and month."""
    ticks = []
    for row in rows:
        name = row["Lokasi"]
        province = catalog.resolve_province(name) or slugify(name)
        commodity = catalog.resolve_commodity(row["Komoditas"]) or slugify(row["Komoditas"])
        for column, value in row.items():
            month_name, _, year = column.partition(" ")
            month = MONTHS_ID.get(month_name.lower())
            if month is None or not value:
                continue
            ticks.append({
                "commodity": commodity, "market": f"rata-rata-{slugify(name)}",
                "province": province, "price": float(value),
                "ts": day_ts(date(int(year), month, 15)),
            })
    return ticks


def ticks_from_values(rows: Iterable[dict], name: str) -> list[dict]:
    """A NAB-style ``timestamp,value`` file → ticks of one series (timestamps taken as UTC)."""
    ticks = []
    for row in rows:
        when = datetime.fromisoformat(row["timestamp"])
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        ticks.append({"commodity": "nab", "market": name, "province": "",
                      "price": float(row["value"]), "ts": when.timestamp()})
    return ticks


def read_path(path: Path, catalog: Catalog) -> list[dict]:
    """Ticks of one file, by its content (see the module doc)."""
    province_of = _province_resolver(catalog)
    if path.suffix in (".ndjson", ".jsonl"):
        with path.open(encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return ticks_from_rows(rows, province_of)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or ())
        if {"timestamp", "value"} <= fields:
            return ticks_from_values(reader, slugify(path.stem))
        if {"Lokasi", "Komoditas"} <= fields:
            return ticks_from_wide_monthly(reader, catalog)
        if {"commodity", "market", "price"} <= fields and fields & {"date", "ts"}:
            return ticks_from_rows(reader, province_of)
    raise ValueError(f"{path}: unknown layout (columns {sorted(fields)})")


def read_paths(paths: list[Path], catalog: Catalog) -> list[dict]:
    """Ticks of every file (directories: their *.csv / *.ndjson files), in time order."""
    ticks: list[dict] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".ndjson", ".jsonl"))
        else:
            files = [path]
        for file in files:
            ticks.extend(read_path(file, catalog))
    ticks.sort(key=lambda t: (t["ts"], t["commodity"], t["market"]))
    return ticks


def _province_resolver(catalog: Catalog) -> Callable[[str], str]:
    cache: dict[str, str] = {}

    def province_of(text: str) -> str:
        if text not in cache:
            cache[text] = catalog.resolve_province(text) or text if text else ""
        return cache[text]

    return province_of
