"""The catalog: commodities, provinces and markets, read from ``rules/catalog/*.yaml``.

Operators edit the YAML; this module only reads and checks it, so that a typo surfaces as a
``CatalogError`` naming file, line and reason when the server starts, not as a wrong alert
later. Everything here is pure: no I/O beyond reading the three files.

>>> catalog = load_catalog()
>>> len(catalog.provinces), catalog.provinces["32"].name, catalog.provinces["32"].tz_abbr
(38, 'Jawa Barat', 'WIB')
>>> rice = catalog.commodities["beras-medium"]
>>> rice.ceiling_for("32"), rice.ceiling_for("94"), rice.ceiling_kind
(13500.0, 15500.0, 'HET')
>>> catalog.suggest_commodity("cabe rawit")
['cabai-rawit-merah', 'cabai-rawit-hijau']
>>> catalog.resolve_province("Jabar"), catalog.markets["pasar-agung"].city
('32', 'Kota Depok')
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, overload

import yaml

from base import yaml_lines
from base.names import NameIndex, normalise, slugify
from base.yaml_lines import LineDict, LineList

__all__ = [
    "Catalog", "CatalogError", "Commodity", "DEFAULT_DIR", "Market", "NameIndex", "Province",
    "load_catalog", "normalise", "slugify",
]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "rules" / "catalog"  # data operators edit, beside the rules
PROVINCE_COUNT = 38
CEILING_KINDS = ("HET", "HAP")
# IANA zones in use in Indonesia and the abbreviation each must carry.
TIMEZONES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA",
             "Asia/Jayapura": "WIT"}
# Indonesia's extent with a margin: catches a centroid written as [lat, lon].
LON_RANGE, LAT_RANGE = (94.0, 142.0), (-12.0, 7.0)
# No national ceiling is below this; a smaller number is almost always "13.500" written with
# the Indonesian thousands separator, which YAML reads as 13.5.
MIN_CEILING = 100.0

_UNSET = object()
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PROVINCE_CODE = re.compile(r"^[1-9][0-9]$")


class CatalogError(ValueError):
    """Bad catalog data: ``file``, ``line`` (1-based, None when unknown) and ``reason``."""

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        super().__init__(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")
        self.file, self.line, self.reason = file, line, reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.line, self.reason))

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class Commodity:
    id: str
    name_id: str
    name_en: str
    unit: str
    ceiling: float | None = None
    ceiling_note: str | None = None
    ceiling_kind: str | None = None
    ceiling_by_zone: dict[int, float] = field(default_factory=dict)
    # Resolved at load: zone values expanded to province codes, explicit province values on
    # top, so a lookup needs no province table.
    ceiling_by_province: dict[str, float] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    def ceiling_for(self, province_code: str | None) -> float | None:
        """The ceiling in a province; the national one for an unknown or missing province."""
        if province_code is None:
            return self.ceiling
        return self.ceiling_by_province.get(province_code, self.ceiling)


@dataclass(frozen=True)
class Province:
    code: str
    name: str
    timezone: str
    tz_abbr: str
    centroid: tuple[float, float]  # (lon, lat)
    zone: int | None = None
    geo_id: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Market:
    id: str
    name: str
    province: str
    city: str


@dataclass(frozen=True)
class Catalog:
    commodities: dict[str, Commodity]
    provinces: dict[str, Province]
    markets: dict[str, Market]

    def to_json(self) -> dict[str, Any]:
        """What GET /api/v1/catalog returns; lists keep the order of the YAML files."""
        return {
            # JSON object keys are strings (and orjson insists), hence the zone keys' str().
            "commodities": [{**asdict(c), "ceiling_by_zone": {str(z): v for z, v in
                                                               c.ceiling_by_zone.items()}}
                            for c in self.commodities.values()],
            "provinces": [asdict(p) for p in self.provinces.values()],
            "markets": [asdict(m) for m in self.markets.values()],
        }

    def resolve_commodity(self, text: str) -> str | None:
        """The commodity id that ``text`` names exactly (id, name or alias, any case)."""
        return self.commodity_names.resolve(text)

    def resolve_province(self, text: str) -> str | None:
        """The province code that ``text`` names exactly (code, name or alias, any case)."""
        return self.province_names.resolve(text)

    def suggest_commodity(self, text: str, limit: int = 3) -> list[str]:
        """Ids of commodities whose id, names or aliases are close to ``text``, best first."""
        return self.commodity_names.suggest(text, limit)

    def suggest_province(self, text: str, limit: int = 3) -> list[str]:
        """Codes of provinces whose code, name or aliases are close to ``text``, best first."""
        return self.province_names.suggest(text, limit)

    @cached_property
    def commodity_names(self) -> NameIndex:
        return NameIndex({c.id: (c.id, c.name_id, c.name_en, *c.aliases)
                          for c in self.commodities.values()})

    @cached_property
    def province_names(self) -> NameIndex:
        return NameIndex({p.code: (p.code, p.name, *p.aliases) for p in self.provinces.values()})


def load_catalog(directory: str | Path = DEFAULT_DIR) -> Catalog:
    """Read and check provinces.yaml, commodities.yaml and markets.yaml in ``directory``."""
    directory = Path(directory)
    provinces = _load_provinces(*_read(directory / "provinces.yaml", "provinces"))
    commodities = _load_commodities(*_read(directory / "commodities.yaml", "commodities"),
                                    provinces)
    markets_file, market_entries, _ = _read(directory / "markets.yaml", "markets")
    markets = _load_markets(markets_file, market_entries, provinces)
    return Catalog(commodities=commodities, provinces=provinces, markets=markets)


def _read(path: Path, key: str) -> tuple[str, list[LineDict], int]:
    """The file name, the entries under its top-level ``key`` and that list's line."""
    file = str(path)
    try:
        text = yaml_lines.read_text(path)
    except OSError as exc:
        raise CatalogError(file, None, f"cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, yaml_lines.FileTooLarge) as exc:
        raise CatalogError(file, None, f"cannot read: {exc}") from None
    try:
        document = yaml_lines.load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(file, yaml_lines.error_line(exc), yaml_lines.error_reason(exc)) from None
    if not isinstance(document, LineDict) or not isinstance(document.get(key), LineList):
        raise CatalogError(file, 1, f"expected a top-level '{key}:' list")
    entries = document[key]
    for item, line in zip(entries, entries.item_lines):
        if not isinstance(item, LineDict):
            raise CatalogError(file, line, f"each entry of '{key}' must be a mapping of fields")
    return file, list(entries), entries.line


class _Fields:
    """Typed reads of one entry's fields; each failure names the file and the field's line."""

    def __init__(self, file: str, entry: LineDict, allowed: tuple[str, ...]) -> None:
        self.file, self.entry = file, entry
        for key in entry:
            if key not in allowed:
                raise self.error(key, f"unknown field {key!r} (known: {', '.join(allowed)})")

    def error(self, key: str | None, reason: str) -> CatalogError:
        return CatalogError(self.file, self.entry.key_lines.get(key, self.entry.line), reason)

    @overload
    def text(self, key: str, required: Literal[True] = True) -> str: ...

    @overload
    def text(self, key: str, required: bool) -> str | None: ...

    def text(self, key: str, required: bool = True) -> str | None:
        value = self.entry.get(key)
        if value is None:
            if required:
                raise self.error(None, f"missing required field '{key}'")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
            raise self.error(key, f"'{key}' must be non-empty text")
        return str(value).strip()

    def slug(self, key: str) -> str:
        value = self.text(key)
        if not _SLUG.match(value):
            raise self.error(key, f"'{key}' must be a slug like {slugify(value) or 'beras-medium'!r}")
        return value

    def code(self, key: str, provinces: dict[str, Province] | None = None) -> str:
        # An unquoted 32 reads as an int; accept it, the code is the same.
        value = self.text(key)
        if not _PROVINCE_CODE.match(value):
            raise self.error(key, f"'{key}' must be a two-digit province code, got {value!r}")
        if provinces is not None and value not in provinces:
            raise self.error(key, f"unknown province code {value!r} (not in provinces.yaml)")
        return value

    @overload
    def number(self, key: str, *, minimum: float = 0.0) -> float | None: ...

    @overload
    def number(self, key: str, value: Any, minimum: float = 0.0) -> float: ...

    def number(self, key: str, value: Any = _UNSET, minimum: float = 0.0) -> float | None:
        """A positive number: the field ``key``, or ``value`` read from inside that field."""
        if value is _UNSET:
            value = self.entry.get(key)
            if value is None:
                return None  # an absent optional field, unlike an empty value in a table
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"'{key}' must be a number, got {value!r}")
        if not value > 0:
            raise self.error(key, f"'{key}' must be positive, got {value!r}")
        if value < minimum:
            raise self.error(key, f"'{key}' is {value!r}: write rupiah without a thousands "
                                  f"separator (13500, not 13.500)")
        return float(value)

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.entry.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, f"'{key}' must be a list of names")
        return tuple(v.strip() for v in value)

    def table(self, key: str) -> dict[Any, Any]:
        value = self.entry.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"'{key}' must be a mapping")
        return value


def _unique(fields: _Fields, key: str, value: str, seen: dict[str, int], what: str) -> None:
    if value in seen:
        raise fields.error(key, f"duplicate {what} {value!r} (first at line {seen[value]})")
    seen[value] = fields.entry.key_lines.get(key, fields.entry.line)


def _claim_names(fields: _Fields, owner: str, names: list[tuple[str, str]],
                 claimed: dict[str, str], what: str) -> None:
    # Resolution and suggestions need each (field, name) to point at one entry only.
    for key, name in names:
        normalised = normalise(name)
        if claimed.get(normalised, owner) != owner:
            raise fields.error(key, f"{name!r} is already a name of {what} {claimed[normalised]!r}")
        claimed[normalised] = owner


# --- the three files --------------------------------------------------------------------------

def _load_provinces(file: str, entries: list[LineDict],
                    list_line: int) -> dict[str, Province]:
    provinces: dict[str, Province] = {}
    seen: dict[str, int] = {}
    claimed: dict[str, str] = {}
    for entry in entries:
        f = _Fields(file, entry, ("code", "name", "timezone", "tz_abbr", "centroid", "zone",
                                  "geo_id", "aliases"))
        code, name = f.code("code"), f.text("name")
        _unique(f, "code", code, seen, "province code")
        timezone, tz_abbr = f.text("timezone"), f.text("tz_abbr")
        if timezone not in TIMEZONES:
            raise f.error("timezone", f"timezone {timezone!r} is not an Indonesian zone "
                                      f"({', '.join(TIMEZONES)})")
        if TIMEZONES[timezone] != tz_abbr:
            raise f.error("tz_abbr", f"{timezone} is {TIMEZONES[timezone]}, not {tz_abbr}")
        centroid = entry.get("centroid")
        if not (isinstance(centroid, list) and len(centroid) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in centroid)):
            raise f.error("centroid", "'centroid' must be [lon, lat], two numbers")
        lon, lat = float(centroid[0]), float(centroid[1])
        if not (LON_RANGE[0] <= lon <= LON_RANGE[1] and LAT_RANGE[0] <= lat <= LAT_RANGE[1]):
            raise f.error("centroid", f"centroid [{lon}, {lat}] is outside Indonesia "
                                      f"(it is [lon, lat])")
        zone = entry.get("zone")
        if zone is not None and (isinstance(zone, bool) or not isinstance(zone, int) or zone < 1):
            raise f.error("zone", f"'zone' must be a positive whole number, got {zone!r}")
        aliases = f.texts("aliases")
        _claim_names(f, code, [("code", code), ("name", name), *(("aliases", a) for a in aliases)],
                     claimed, "province")
        provinces[code] = Province(code=code, name=name, timezone=timezone, tz_abbr=tz_abbr,
                                   centroid=(lon, lat), zone=zone,
                                   geo_id=f.text("geo_id", required=False), aliases=aliases)
    if len(provinces) != PROVINCE_COUNT:
        raise CatalogError(file, list_line,
                           f"expected {PROVINCE_COUNT} provinces, found {len(provinces)}")
    return provinces


def _load_commodities(file: str, entries: list[LineDict], list_line: int,
                      provinces: dict[str, Province]) -> dict[str, Commodity]:
    commodities: dict[str, Commodity] = {}
    seen: dict[str, int] = {}
    claimed: dict[str, str] = {}
    zones = {p.zone for p in provinces.values() if p.zone is not None}
    for entry in entries:
        f = _Fields(file, entry, ("id", "name_id", "name_en", "unit", "aliases", "ceiling",
                                  "ceiling_kind", "ceiling_by_zone", "ceiling_by_province",
                                  "ceiling_note"))
        cid = f.slug("id")
        _unique(f, "id", cid, seen, "commodity id")
        name_id, name_en, unit = f.text("name_id"), f.text("name_en"), f.text("unit")
        aliases = f.texts("aliases")
        _claim_names(f, cid, [("id", cid), ("name_id", name_id), ("name_en", name_en),
                              *(("aliases", a) for a in aliases)], claimed, "commodity")
        ceiling = f.number("ceiling", minimum=MIN_CEILING)
        by_zone: dict[int, float] = {}
        for zone, value in f.table("ceiling_by_zone").items():
            zone = int(zone) if isinstance(zone, str) and zone.isdigit() else zone
            if zone not in zones:
                raise f.error("ceiling_by_zone", f"zone {zone!r} is not a zone of any province "
                                                 f"(zones: {sorted(zones)})")
            by_zone[zone] = f.number("ceiling_by_zone", value, MIN_CEILING)
        by_province = {p.code: by_zone[p.zone] for p in provinces.values() if p.zone in by_zone}
        for code, value in f.table("ceiling_by_province").items():
            code = str(code)
            if code not in provinces:
                raise f.error("ceiling_by_province", f"unknown province code {code!r}")
            by_province[code] = f.number("ceiling_by_province", value, MIN_CEILING)
        kind = f.text("ceiling_kind", required=False)
        if by_province and ceiling is None:
            raise f.error("ceiling", "regional ceilings need a national 'ceiling' as default")
        if ceiling is not None and kind not in CEILING_KINDS:
            raise f.error("ceiling_kind" if kind else "ceiling",
                          f"'ceiling_kind' must be one of {', '.join(CEILING_KINDS)}")
        if ceiling is None and kind is not None:
            raise f.error("ceiling_kind", "'ceiling_kind' without a 'ceiling'")
        commodities[cid] = Commodity(
            id=cid, name_id=name_id, name_en=name_en, unit=unit, ceiling=ceiling,
            ceiling_note=f.text("ceiling_note", required=False), ceiling_kind=kind,
            ceiling_by_zone=by_zone, ceiling_by_province=by_province, aliases=aliases)
    if not commodities:
        raise CatalogError(file, list_line, "no commodities")
    return commodities


def _load_markets(file: str, entries: list[LineDict],
                  provinces: dict[str, Province]) -> dict[str, Market]:
    markets: dict[str, Market] = {}
    seen: dict[str, int] = {}
    for entry in entries:
        f = _Fields(file, entry, ("id", "name", "province", "city"))
        mid = f.slug("id")
        _unique(f, "id", mid, seen, "market id")
        markets[mid] = Market(id=mid, name=f.text("name"), province=f.code("province", provinces),
                              city=f.text("city"))
    return markets
