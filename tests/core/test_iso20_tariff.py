"""The station tariff in ISO 15118-20 scheduled mode: with ``SessionConfig.tariff`` the
ScheduleExchangeRes carries an AbsolutePriceSchedule (V2G_CI_CommonMessages.xsd
AbsolutePriceScheduleType) and ServiceDetail announces Pricing 1 (absolute prices) for
the scheduled parameter set; without one, neither (as before).  Every message goes
through the real codec (tests.core.iso20_peer encodes and decodes both ways).  The TOML
side: ``[evse.tariff]`` reaches SessionConfig, bad values name the key."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from secc import codec
from secc.config import parse, session_config
from secc.core.config import PncTrust, Tariff
from secc.core.events import ChargingScheduleUpdate
from secc.errors import ConfigError
from tests.core.iso20_peer import (
    C,
    Ev,
    config,
    loop,
    num,
    service_id,
    start,
    to_authorized,
    to_precharged,
    to_scheduled,
)

TARIFF = Tariff(
    currency="EUR", price_per_kwh=0.359, tax_rate=19.0, description="Flat rate incl. 19 % VAT"
)
ALGORITHM_POWER = "urn:iso:std:iso:15118:-20:PriceAlgorithm:1-Power"


def _pricing(res: Any) -> dict[int, int]:
    """ServiceDetailRes: ParameterSetID -> its Pricing parameter."""
    out = {}
    for pset in res.service_parameter_list.parameter_set:
        (pricing,) = [p.int_value for p in pset.parameter if p.name == "Pricing"]
        out[pset.parameter_set_id] = pricing
    return out


@pytest.mark.parametrize("dc", [False, True], ids=["AC", "DC"])
def test_scheduled_mode_sends_the_tariff_and_charges_to_session_stop(dc: bool) -> None:
    ev = Ev(cfg=config(tariff=TARIFF), dc=dc)
    to_authorized(ev)
    assert ev.service_discovery().response_code.value == "OK"
    # Table 205 / 207: 1 absolute prices in scheduled mode; dynamic mode has no prices
    assert _pricing(ev.service_detail(service_id(ev))) == {1: 1, 2: 0}
    assert ev.service_selection(service_id(ev), 1).response_code.value == "OK"
    assert ev.charge_parameters().response_code.value == "OK"
    res = ev.schedule_exchange(False)  # encoded and decoded by the real codec
    assert (res.response_code.value, res.evse_processing.value) == ("OK", "Finished")
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    schedule = tuple_.charging_schedule
    assert schedule.price_level_schedule is None
    price = schedule.absolute_price_schedule
    assert price is not None
    assert price.id == "PriceSchedule1" and price.price_schedule_id == 1
    assert price.time_anchor == schedule.power_schedule.time_anchor
    assert price.price_schedule_description == "Flat rate incl. 19 % VAT"
    assert (price.currency, price.language) == ("EUR", "eng")
    assert price.price_algorithm == ALGORITHM_POWER
    assert price.minimum_cost is None and price.maximum_cost is None
    (stack,) = price.price_rule_stacks.price_rule_stack
    assert stack.duration == 86400  # as long as the power schedule
    (rule,) = stack.price_rule
    assert num(rule.energy_fee) == pytest.approx(0.359)
    assert (rule.energy_fee.exponent, rule.energy_fee.value) == (-3, 359)
    assert num(rule.power_range_start) == 0.0 and rule.parking_fee is None
    (tax,) = price.tax_rules.tax_rule
    assert (tax.tax_rule_id, num(tax.tax_rate), tax.tax_included_in_price) == (1, 19.0, True)
    assert tax.applies_to_energy_fee is True
    assert not (tax.applies_to_parking_fee or tax.applies_to_overstay_fee)
    assert tax.applies_minimum_maximum_cost is False
    assert price.overstay_rules is None and price.additional_selected_services is None
    # the rest of the session is unchanged
    if dc:
        to_precharged(ev)
    assert start(ev, False).response_code.value == "OK"
    assert loop(ev, False).response_code.value == "OK"
    assert ev.power_delivery("Stop").response_code.value == "OK"
    if dc:
        assert ev.welding().response_code.value == "OK"
    assert ev.session_stop().response_code.value == "OK"


def test_without_a_tariff_nothing_changes() -> None:
    ev = Ev(dc=False)
    to_authorized(ev)
    assert ev.service_discovery().response_code.value == "OK"
    assert _pricing(ev.service_detail(service_id(ev))) == {1: 0, 2: 0}
    assert ev.service_selection(1, 1).response_code.value == "OK"
    assert ev.charge_parameters().response_code.value == "OK"
    res = ev.schedule_exchange(False)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    assert tuple_.charging_schedule.absolute_price_schedule is None
    assert tuple_.charging_schedule.price_level_schedule is None


def test_the_price_schedule_spans_the_csms_schedule_and_no_tax_rule_without_a_rate() -> None:
    tariff = Tariff(currency="SEK", price_per_kwh=4.5, language="swe")
    ev = Ev(cfg=config(tariff=tariff), dc=False)
    to_authorized(ev)
    entries = ((0, 7000.0, None), (1800, 3000.0, 5400))
    ev.feed(ChargingScheduleUpdate(entries))
    res = to_scheduled(ev, False)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    power = tuple_.charging_schedule.power_schedule.power_schedule_entries.power_schedule_entry
    assert [e.duration for e in power] == [1800, 5400]
    price = tuple_.charging_schedule.absolute_price_schedule
    (stack,) = price.price_rule_stacks.price_rule_stack
    assert stack.duration == 7200
    (rule,) = stack.price_rule
    assert num(rule.energy_fee) == 4.5
    assert (price.currency, price.language, price.tax_rules) == ("SEK", "swe", None)
    assert price.price_schedule_description is None


def test_dynamic_mode_has_no_price_schedule() -> None:
    ev = Ev(cfg=config(tariff=TARIFF), dc=True)
    to_authorized(ev)
    res = to_scheduled(ev, True)
    assert res.dynamic_se_res_control_mode is not None
    assert res.scheduled_se_res_control_mode is None


def test_the_encoded_price_schedule_is_schema_valid_exi() -> None:
    """The AbsolutePriceSchedule element alone round-trips (Id attribute included)."""
    ev = Ev(cfg=config(tariff=TARIFF), dc=False)
    to_authorized(ev)
    res = to_scheduled(ev, False)
    (tuple_,) = res.scheduled_se_res_control_mode.schedule_tuple
    without = C.ScheduleExchangeRes(
        header=res.header,
        response_code=res.response_code,
        evse_processing=res.evse_processing,
        scheduled_se_res_control_mode=C.Scheduled_SEResControlMode(
            schedule_tuple=(
                C.ScheduleTuple(
                    schedule_tuple_id=1,
                    charging_schedule=C.ChargingSchedule(
                        power_schedule=tuple_.charging_schedule.power_schedule
                    ),
                ),
            )
        ),
    )
    assert len(codec.encode(res)) > len(codec.encode(without))
    assert codec.decode(codec.encode(res), "iso20-common") == res


def _station(tariff: str) -> Any:
    text = f'[[evse]]\nevse_id = "DE*ABC*E1234567*1"\n[evse.hal]\nbackend = "simulated"\n{tariff}'
    return parse(tomllib.loads(text), "secc.toml")


def test_the_toml_tariff_reaches_the_session_config() -> None:
    station = _station(
        '[evse.tariff]\ncurrency = "EUR"\nprice_per_kwh = 0.49\ntax_rate = 19\n'
        'tax_included = false\ndescription = "AC 22 kW"\n'
    )
    cfg = session_config(station.evse[0], tls=True, trust=PncTrust())
    assert cfg.tariff == Tariff(
        currency="EUR",
        price_per_kwh=0.49,
        tax_rate=19.0,
        tax_included=False,
        description="AC 22 kW",
    )
    plain = session_config(_station("").evse[0], tls=True, trust=PncTrust())
    assert plain.tariff is None


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ('currency = "euro"\nprice_per_kwh = 0.3\n', "currency"),
        ('currency = "EUR"\nprice_per_kwh = -1\n', "price_per_kwh"),
        ('currency = "EUR"\nprice_per_kwh = 40000\n', "price_per_kwh"),
        ('currency = "EUR"\nprice_per_kwh = 0.3\nlanguage = "english"\n', "language"),
        ('currency = "EUR"\nprice_per_kwh = 0.3\ntax_rate = 120\n', "tax_rate"),
        ('currency = "EUR"\n', "missing required key evse[0].tariff.price_per_kwh"),
        ('currency = "EUR"\nprice_per_kwh = 0.3\nprice = 1\n', "unknown key evse[0].tariff.price"),
    ],
)
def test_a_bad_tariff_is_refused_with_its_key(table: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        _station(f"[evse.tariff]\n{table}")
    assert needle in str(info.value) and "secc.toml" in str(info.value)
