"""The ceiling detector names the reference it compares with: a HET (legal retail ceiling) for
rice and MinyaKita, a HAP (reference price, not a cap) for chilli and shallots."""
from __future__ import annotations

import pytest

from detectors.ceiling import CeilingPrice, Reference, references
from detectors.stack import DetectorStack
from base.catalog import load_catalog


@pytest.fixture(scope="module")
def stack() -> DetectorStack:
    return DetectorStack(ceilings=references(load_catalog().commodities.values()))


def verdict(stack: DetectorStack, commodity: str, price: float, province: str = "32") -> dict:
    return stack.process({"commodity": commodity, "market": "pasar-agung", "province": province,
                          "price": price, "ts": 0.0})


def test_chilli_above_its_hap_is_said_to_be_above_a_reference_price_not_a_ceiling(stack):
    reason = verdict(stack, "cabai-rawit-merah", 60000.0)["reasons"]["ceiling"]
    assert reason == "Rp 60.000 is 5% above the reference price (HAP) Rp 57.000"
    assert "HET" not in reason and "ceiling" not in reason


def test_shallots_have_a_hap(stack):
    reason = verdict(stack, "bawang-merah", 1e6)["reasons"]["ceiling"]
    assert "reference price (HAP)" in reason


def test_rice_above_its_het_is_said_to_be_above_the_legal_ceiling_of_its_zone(stack):
    assert verdict(stack, "beras-medium", 14500.0)["reasons"]["ceiling"] == \
        "Rp 14.500 is 7% above the legal ceiling (HET) Rp 13.500"
    # Papua (zone 3) has its own HET: the reason names the regional figure.
    assert verdict(stack, "beras-medium", 16000.0, province="94")["reasons"]["ceiling"] == \
        "Rp 16.000 is 3% above the legal ceiling (HET) Rp 15.500"


def test_minyakita_has_a_het(stack):
    assert "legal ceiling (HET) Rp 15.700" in verdict(stack, "minyakita", 16000.0)["reasons"]["ceiling"]


def test_a_reference_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of HET, HAP"):
        Reference(57000.0, "HETT")
    with pytest.raises(ValueError, match="positive"):
        CeilingPrice(Reference(0.0, "HAP"))


def test_the_engine_gives_the_stack_each_reference_with_its_kind():
    from detectors.ceiling import ceilings_of
    ceilings = ceilings_of(load_catalog())
    assert ceilings["cabai-rawit-merah"] == Reference(57000.0, "HAP")
    assert ceilings["minyakita"] == Reference(15700.0, "HET")
    assert ceilings[("beras-medium", "94")] == Reference(15500.0, "HET")
