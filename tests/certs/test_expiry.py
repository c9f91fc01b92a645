"""Expiry report: days left and renewal due, at explicit times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from certs.expiry import expiry_report
from certs.store import Store
from certs.testpki import TestPki


def test_expiry_report_over_the_station_store(
    pki_dir: Path, pki: TestPki, now: dt.datetime
) -> None:
    certs = Store(pki_dir / "station").all_certificates()
    labels = {label for label, _ in certs}
    assert {"trust/v2g", "trust/mo", "leaf/v2g[0]", "leaf/v2g[2]", "leaf/csms[0]"} <= labels
    report = expiry_report(certs, now)
    assert report == sorted(report, key=lambda e: (e.not_after, e.label))
    secc = next(e for e in report if e.label == "leaf/v2g[0]")
    assert secc.days_left == 364  # valid from one hour before `now`, 365 days
    assert not secc.renewal_due and not secc.expired
    soon = expiry_report(certs, now + dt.timedelta(days=340))
    secc = next(e for e in soon if e.label == "leaf/v2g[0]")
    assert secc.renewal_due and not secc.expired and secc.days_left == 24
    assert not next(e for e in soon if e.label == "trust/v2g").renewal_due
    custom = expiry_report(certs, now + dt.timedelta(days=340), renew_before_days=10)
    assert not next(e for e in custom if e.label == "leaf/v2g[0]").renewal_due
    late = expiry_report(certs, now + dt.timedelta(days=366))
    secc = next(e for e in late if e.label == "leaf/v2g[0]")
    assert secc.expired and secc.renewal_due and secc.days_left < 0
    assert secc.to_json()["expired"] is True


def test_bad_arguments(pki: TestPki, now: dt.datetime) -> None:
    with pytest.raises(ValueError, match="aware"):
        expiry_report([], now.replace(tzinfo=None))
    with pytest.raises(ValueError, match=">= 0"):
        expiry_report([("x", pki.cert("secc"))], now, renew_before_days=-1)
