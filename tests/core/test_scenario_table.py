"""Every named scenario (secc.testing.scenarios) ends as it says: last response and code,
contactor actions, end reason; and every end opens the contactors first."""

from __future__ import annotations

import datetime as dt

import pytest

from secc.core.actions import CloseContactors, OpenContactors, SendResponse
from secc.testing.clock import FakeClock
from secc.testing.pki import Credentials, make_credentials
from secc.testing.scenarios import SCENARIOS, run_scenario

START = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def creds() -> Credentials:
    return make_credentials(START)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str, creds: Credentials) -> None:
    scenario = SCENARIOS[name]
    utc = START + dt.timedelta(days=800) if name == "expired-contract" else START
    out = run_scenario(scenario, creds, clock=FakeClock(utc=utc))
    expect = scenario.expect
    assert out.responses[-1] == expect.last, out.responses[-6:]
    assert out.end is not None and out.end.reason is expect.end, out.end
    actions = [a for _, a in out.actions]
    closes = [i for i, a in enumerate(actions) if isinstance(a, CloseContactors)]
    assert bool(closes) is expect.charged
    if closes:
        # the close answers a PowerDelivery: the next response is PowerDeliveryRes OK
        nxt = next(a for a in actions[closes[0] :] if isinstance(a, SendResponse))
        assert nxt.name == "PowerDeliveryRes"
        assert nxt.message.body.body_element.response_code.value == "OK"
    kinds = [type(a).__name__ for a in actions]
    end = kinds.index("CloseConnection")
    assert "OpenContactors" in kinds[end - 3 : end]
    assert kinds[-1] == "SessionEnded" and kinds.count("SessionEnded") == 1
    last_open = max(i for i, a in enumerate(actions) if isinstance(a, OpenContactors))
    assert not closes or last_open > closes[-1]
    assert out.evse.status.contactors_closed is False
