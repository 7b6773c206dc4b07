import csv
import json
import pickle
import shutil
import time
from pathlib import Path

import pytest

from base.catalog import DEFAULT_DIR, CatalogError, load_catalog

REPO = Path(__file__).resolve().parents[1]
DEMO_SLICE = REPO / "server" / "demo_data" / "pihps-jabar-2024.csv"
FIXTURE = REPO / "tests" / "fixtures" / "pihps-jabar-sample.csv"

# The BPS/Kemendagri codes of the 38 provinces (Papua split: 93-96).
PROVINCE_CODES = {
    "11", "12", "13", "14", "15", "16", "17", "18", "19", "21", "31", "32", "33", "34", "35",
    "36", "51", "52", "53", "61", "62", "63", "64", "65", "71", "72", "73", "74", "75", "76",
    "81", "82", "91", "92", "93", "94", "95", "96",
}
PIHPS_JABAR_MARKETS = {
    "pasar-agung", "pasar-anyar", "pasar-cikurubuk", "pasar-cisalak", "pasar-gudang",
    "pasar-kanoman", "pasar-kiara-condong", "pasar-kosambi", "pasar-kramat", "pasar-kranji",
    "pasar-manonjaya", "pasar-mundu", "pasar-pancasila", "pasar-pelita", "pasar-pondok-gede",
    "pasar-singaparna", "pasar-warung-jambu-2", "pasar-weru",
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_shipped_catalog_has_all_provinces_and_consistent_markets(catalog):
    assert set(catalog.provinces) == PROVINCE_CODES
    assert PIHPS_JABAR_MARKETS <= set(catalog.markets)
    for market in catalog.markets.values():
        assert market.province in catalog.provinces, market
    assert {m.province for m in catalog.markets.values() if m.id in PIHPS_JABAR_MARKETS} == {"32"}


def test_provinces_carry_the_right_time_zone_and_a_centroid_inside_them(catalog):
    p = catalog.provinces
    assert (p["32"].timezone, p["32"].tz_abbr) == ("Asia/Jakarta", "WIB")
    assert (p["51"].timezone, p["51"].tz_abbr) == ("Asia/Makassar", "WITA")
    assert (p["64"].tz_abbr, p["61"].tz_abbr, p["81"].tz_abbr) == ("WITA", "WIB", "WIT")
    assert {p[c].tz_abbr for c in ("91", "92", "93", "94", "95", "96")} == {"WIT"}
    assert p["96"].name == "Papua Barat Daya" and p["96"].geo_id == "92-B"
    lon, lat = p["32"].centroid  # West Java: the centroid lies near Bandung
    assert 107.0 < lon < 108.5 and -7.5 < lat < -6.5
    lon, lat = p["91"].centroid  # Papua is the far east, south of the equator
    assert lon > 135 and lat < 0


def test_ceilings_follow_the_het_zone_of_the_province(catalog):
    medium, premium = catalog.commodities["beras-medium"], catalog.commodities["beras-premium"]
    assert medium.ceiling_kind == "HET"
    assert [medium.ceiling_for(c) for c in ("32", "11", "94")] == [13500, 14000, 15500]
    assert [premium.ceiling_for(c) for c in ("73", "53", "81")] == [14900, 15400, 15800]
    sugar = catalog.commodities["gula-pasir"]
    assert (sugar.ceiling_for("32"), sugar.ceiling_for("82"), sugar.ceiling_kind) == \
        (17500, 18500, "HAP")
    # An unknown or missing province falls back to the national figure.
    assert medium.ceiling_for("99") == medium.ceiling_for(None) == 13500
    assert catalog.commodities["minyakita"].ceiling_for("32") == 15700
    assert catalog.commodities["minyakita"].unit == "liter"
    assert catalog.commodities["cabai-merah-besar"].ceiling_for("32") is None


def test_every_ceiling_names_its_source(catalog):
    for commodity in catalog.commodities.values():
        if commodity.ceiling is not None:
            assert commodity.ceiling_note and commodity.ceiling_kind in ("HET", "HAP"), commodity


def test_to_json_is_plain_json_in_file_order(catalog):
    body = json.loads(json.dumps(catalog.to_json()))
    assert [c["id"] for c in body["commodities"]] == list(catalog.commodities)
    assert len(body["provinces"]) == 38 and len(body["markets"]) == len(catalog.markets)
    rice = next(c for c in body["commodities"] if c["id"] == "beras-medium")
    assert rice["ceiling_by_zone"] == {"1": 13500, "2": 14000, "3": 15500}
    assert rice["ceiling_by_province"]["96"] == 15500
    jabar = next(p for p in body["provinces"] if p["code"] == "32")
    assert jabar["centroid"] == list(catalog.provinces["32"].centroid) and jabar["zone"] == 1


def test_suggestions_find_close_names(catalog):
    assert catalog.suggest_commodity("cabe rawit")[0] == "cabai-rawit-merah"
    assert "cabai-rawit-hijau" in catalog.suggest_commodity("cabe rawit")
    assert catalog.suggest_commodity("bawang merh") == ["bawang-merah"]
    assert catalog.suggest_commodity("telor")[0] == "telur-ayam-ras"
    assert set(catalog.suggest_commodity("rice")) == {"beras-medium", "beras-premium", "beras-sphp"}
    assert catalog.suggest_commodity("xyzzy") == []
    assert catalog.suggest_commodity("") == []
    assert catalog.suggest_province("jawa brat")[0] == "32"
    assert catalog.suggest_province("papua barat")[:2] == ["92", "96"]
    assert catalog.suggest_province("Papua Barat Daya")[0] == "96"


def test_common_short_forms_name_provinces_and_commodities(catalog):
    short = {"Jabar": "32", "Jateng": "33", "Jatim": "35", "DKI": "31", "DIY": "34", "Sumut": "12",
             "Sulsel": "73", "NTB": "52", "NTT": "53", "Kalbar": "61", "Kaltim": "64", "Sumbar": "13",
             "Sumsel": "16", "Kalsel": "63", "Kalteng": "62", "Kaltara": "65", "Sulut": "71",
             "Sulteng": "72", "Sultra": "74", "Sulbar": "76", "Babel": "19", "Kepri": "21", "Malut": "82",
             "NAD": "11", "Jogja": "34", "Pabar": "92"}
    assert {name: catalog.resolve_province(name) for name in short} == short
    assert catalog.resolve_commodity("cabe rawit") == "cabai-rawit-merah"
    assert catalog.resolve_commodity("Cabai Keriting") == "cabai-merah-keriting"


def test_matching_work_is_bounded_whatever_the_text(catalog):
    huge = "cabe rawit " * 20_000
    started = time.monotonic()
    assert catalog.suggest_commodity(huge) == [] and catalog.resolve_commodity(huge) is None
    assert catalog.commodity_names.match_prefix(huge.split()) == ("cabai-rawit-merah", 2)
    assert time.monotonic() - started < 0.2


def test_resolve_accepts_ids_names_aliases_in_any_case(catalog):
    assert catalog.resolve_commodity("Cabai Rawit Merah") == "cabai-rawit-merah"
    assert catalog.resolve_commodity("cabai-rawit-merah") == "cabai-rawit-merah"
    assert catalog.resolve_commodity("GULA KONSUMSI") == "gula-pasir"
    assert catalog.resolve_commodity("cabe") is None
    assert catalog.resolve_province("Jabar") == "32"
    # The 34 pre-2022 province names of the monthly PIHPS-style data set all resolve.
    monthly = ["Aceh", "Bali", "Bangka Belitung", "Banten", "Bengkulu", "D.I. Yogyakarta",
               "DKI Jakarta", "Gorontalo", "Jambi", "Jawa Barat", "Jawa Tengah", "Jawa Timur",
               "Kalimantan Barat", "Kalimantan Selatan", "Kalimantan Tengah", "Kalimantan Timur",
               "Kalimantan Utara", "Kepulauan Riau", "Lampung", "Maluku", "Maluku Utara",
               "Nusa Tenggara Barat", "Nusa Tenggara Timur", "Papua", "Papua Barat", "Riau",
               "Sulawesi Barat", "Sulawesi Selatan", "Sulawesi Tengah", "Sulawesi Tenggara",
               "Sulawesi Utara", "Sumatera Barat", "Sumatera Selatan", "Sumatera Utara"]
    codes = [catalog.resolve_province(name) for name in monthly]
    assert None not in codes and len(set(codes)) == 34
    assert catalog.resolve_province("Papua") == "91"
    assert catalog.resolve_province("Jawa") is None


def _edited_copy(tmp_path, file, old, new):
    """The shipped catalog with ``old`` replaced by ``new`` in ``file``; returns the line."""
    shutil.copytree(DEFAULT_DIR, tmp_path / "catalog")
    path = tmp_path / "catalog" / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return tmp_path / "catalog", text[:text.index(old)].count("\n") + 1


# (file, text, its replacement, expected reason, lines from the start of text to the error)
@pytest.mark.parametrize("file,old,new,reason,offset", [
    ("commodities.yaml", "    ceiling: 41500\n", "    ceiling: 41.500\n", "thousands separator", 0),
    ("commodities.yaml", "    ceiling: 57000\n", "    ceiling: -57000\n", "must be positive", 0),
    ("commodities.yaml", "    ceiling: 57000\n", "    ceiling: Rp 57.000\n", "must be a number", 0),
    ("commodities.yaml", "    ceiling: 15700\n", "    celing: 15700\n", "unknown field 'celing'", 0),
    ("commodities.yaml", "  - id: cabai-rawit-hijau\n", "  - id: cabai-rawit-merah\n",
     "duplicate commodity id 'cabai-rawit-merah'", 0),
    ("commodities.yaml", "    name_en: Wheat flour\n    unit: kg\n",
     "    name_en: Wheat flour\n    unit: kg\n    unit: liter\n", "duplicate key 'unit'", 2),
    ("commodities.yaml", "ceiling_by_zone: {3: 18500}", "ceiling_by_zone: {4: 18500}",
     "zone 4 is not a zone of any province", 0),
    ("commodities.yaml", "    ceiling_kind: HET\n    ceiling_note: Permendag",
     "    ceiling_kind: HETT\n    ceiling_note: Permendag", "'ceiling_kind' must be one of", 0),
    ("markets.yaml", 'province: "33", city: Kota Semarang', 'province: "39", city: Kota Semarang',
     "unknown province code '39'", 0),
    ("markets.yaml", "{id: pasar-weru, name: Pasar Weru,", "{id: Pasar Weru, name: Pasar Weru,",
     "must be a slug like 'pasar-weru'", 0),
    ("markets.yaml", "  - {id: pasar-badung", "  - {id: pasar-badung: [", "", 0),
    ("provinces.yaml", "timezone: Asia/Makassar, tz_abbr: WITA, centroid: [115.105",
     "timezone: Asia/Makassar, tz_abbr: WIB, centroid: [115.105", "Asia/Makassar is WITA, not WIB", 0),
    ("provinces.yaml", "centroid: [107.61, -6.916]", "centroid: [-6.916, 107.61]",
     "outside Indonesia", 0),
    ("provinces.yaml", '{code: "75", name: Gorontalo,', '{code: "74", name: Gorontalo,',
     "duplicate province code '74'", 0),
    ("provinces.yaml", "aliases: [Jateng,", "aliases: [Jabar,",
     "'Jabar' is already a name of province '32'", 0),
])
def test_broken_file_names_file_line_and_reason(tmp_path, file, old, new, reason, offset):
    directory, line = _edited_copy(tmp_path, file, old, new)
    with pytest.raises(CatalogError) as caught:
        load_catalog(directory)
    error = caught.value
    assert Path(error.file).name == file
    assert error.line == line + offset
    assert reason in error.reason
    assert str(error).startswith(f"{error.file}:{error.line}: ")


def test_province_values_override_zone_values(tmp_path):
    directory, _ = _edited_copy(tmp_path, "commodities.yaml", "    ceiling_by_zone: {3: 18500}\n",
                                "    ceiling_by_zone: {3: 18500}\n"
                                "    ceiling_by_province: {\"94\": 19000, 61: 18000}\n")
    sugar = load_catalog(directory).commodities["gula-pasir"]
    assert [sugar.ceiling_for(c) for c in ("94", "95", "61", "32")] == [19000, 18500, 18000, 17500]


def test_empty_regional_value_is_an_error(tmp_path):
    directory, line = _edited_copy(tmp_path, "commodities.yaml", "ceiling_by_zone: {3: 18500}",
                                   "ceiling_by_zone: {3: }")
    with pytest.raises(CatalogError, match="must be a number, got None") as caught:
        load_catalog(directory)
    assert caught.value.line == line


def test_province_count_is_checked(tmp_path):
    old = '  - {code: "14", name: Riau, geo_id: "14", timezone: Asia/Jakarta, tz_abbr: WIB, centroid: [101.797, 0.506], zone: 2}\n'
    directory, _ = _edited_copy(tmp_path, "provinces.yaml", old, "")
    with pytest.raises(CatalogError, match="expected 38 provinces, found 37") as caught:
        load_catalog(directory)
    text = (directory / "provinces.yaml").read_text(encoding="utf-8").splitlines()
    assert text[caught.value.line - 1].startswith("  - {code: \"11\"")  # the list's first line


def test_missing_field_and_missing_file(tmp_path):
    directory, line = _edited_copy(tmp_path, "commodities.yaml",
                                   "    name_en: Wheat flour\n", "")
    with pytest.raises(CatalogError, match="missing required field 'name_en'") as caught:
        load_catalog(directory)
    assert caught.value.line == line - 2  # the entry's first line, "- id: tepung-terigu"
    (directory / "markets.yaml").unlink()
    (directory / "commodities.yaml").write_text((DEFAULT_DIR / "commodities.yaml").read_text())
    with pytest.raises(CatalogError, match="cannot read") as caught:
        load_catalog(directory)
    assert Path(caught.value.file).name == "markets.yaml" and caught.value.line is None


def test_catalog_error_survives_pickling():
    error = pickle.loads(pickle.dumps(CatalogError("markets.yaml", 7, "bad")))
    assert (error.file, error.line, error.reason, str(error)) == \
        ("markets.yaml", 7, "bad", "markets.yaml:7: bad")
    assert error.to_json() == {"file": "markets.yaml", "line": 7, "reason": "bad"}


@pytest.mark.parametrize("path,max_bytes", [(DEMO_SLICE, 1_000_000), (FIXTURE, 100_000)])
def test_demo_slice_and_fixture_use_catalog_ids(catalog, path, max_bytes):
    assert path.stat().st_size < max_bytes
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["date", "commodity", "market", "province", "price"]
        rows = list(reader)
    assert {r["commodity"] for r in rows} == {"bawang-merah", "cabai-rawit-merah"}
    assert {r["market"] for r in rows} == PIHPS_JABAR_MARKETS
    assert {r["province"] for r in rows} == {"32"}
    assert all(float(r["price"]) > 0 for r in rows)
    keys = [(r["date"], r["commodity"], r["market"]) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)


def test_fixture_holds_the_known_entry_error():
    with open(FIXTURE, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh)
                if r["date"] == "2021-07-14" and r["commodity"] == "cabai-rawit-merah"]
    prices = {r["market"]: float(r["price"]) for r in rows}
    assert prices["pasar-agung"] == 387500
    assert max(p for m, p in prices.items() if m != "pasar-agung") < 100000
