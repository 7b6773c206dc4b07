"""Rebuild the demo feed slice and the test fixture from the PIHPS West Java exports.

    python3 -m server.demo_data.make_demo_slice [PIHPS_JABAR_DIR]

PIHPS_JABAR_DIR defaults to /work/shared/data/pihps-jabar (bawang-merah.csv and
cabai-rawit-merah.csv, columns date,commodity,province,city,market,price). The outputs have
the columns date,commodity,market,province,price with commodity, market and province as
catalog ids, rows without a price dropped, values unchanged. See README.md next to this file.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

SOURCE_FILES = ("bawang-merah.csv", "cabai-rawit-merah.csv")
DEFAULT_SOURCE = Path("/work/shared/data/pihps-jabar")
REPO = Path(__file__).resolve().parents[2]
# Output file -> inclusive date window. The demo window has a calm September 2023 to warm up
# on, the chilli surge of November-December 2023 and the shallot rise around Lebaran
# (10 April 2024). The fixture window holds a real entry error: cabai rawit merah at
# Rp 387.500 in Pasar Agung on 2021-07-14, when the other markets were near Rp 70.000.
WINDOWS = {
    Path(__file__).with_name("pihps-jabar-2024.csv"): ("2023-09-01", "2024-06-30"),
    REPO / "tests" / "fixtures" / "pihps-jabar-sample.csv": ("2021-06-21", "2021-07-30"),
}
COLUMNS = ("date", "commodity", "market", "province", "price")


def convert(rows: list[dict[str, str]], start: str, end: str) -> list[dict[str, str]]:
    """Source rows inside [start, end] with a price, as catalog ids, sorted."""
    from base.catalog import load_catalog, slugify  # repo root must be importable

    catalog = load_catalog()
    out = []
    for row in rows:
        if not (start <= row["date"] <= end) or not row["price"]:
            continue
        commodity = catalog.resolve_commodity(row["commodity"])
        province = catalog.resolve_province(row["province"])
        market = slugify(row["market"])
        if commodity is None or province is None or market not in catalog.markets:
            raise ValueError(f"not in the catalog: {row}")
        out.append({"date": row["date"], "commodity": commodity, "market": market,
                    "province": province, "price": row["price"]})
    out.sort(key=lambda r: (r["date"], r["commodity"], r["market"]))
    return out


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else DEFAULT_SOURCE
    rows: list[dict[str, str]] = []
    for name in SOURCE_FILES:
        with open(source / name, newline="", encoding="utf-8") as fh:
            rows.extend(csv.DictReader(fh))
    for target, (start, end) in WINDOWS.items():
        converted = convert(rows, start, end)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(converted)
        print(f"{target}: {len(converted)} rows, {start}..{end}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
