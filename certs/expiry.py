"""Days to expiry for every certificate in the store, and whether renewal is due. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from certs._util import fingerprint, require_aware

DEFAULT_RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True, slots=True)
class ExpiryEntry:
    """One certificate's expiry state."""

    label: str
    subject: str
    not_after: dt.datetime
    days_left: int  # whole days, negative once expired
    renewal_due: bool
    expired: bool
    fingerprint: str

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "subject": self.subject,
            "notAfter": self.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "daysLeft": self.days_left,
            "renewalDue": self.renewal_due,
            "expired": self.expired,
            "sha256": self.fingerprint,
        }


def expiry_report(
    certificates: Iterable[tuple[str, x509.Certificate]],
    utc_now: dt.datetime,
    *,
    renew_before_days: int = DEFAULT_RENEW_BEFORE_DAYS,
) -> list[ExpiryEntry]:
    """Entries sorted by expiry, soonest first; renewal is due within ``renew_before_days``."""
    require_aware(utc_now)
    if renew_before_days < 0:
        raise ValueError("renew_before_days must be >= 0")
    out = []
    for label, cert in certificates:
        left = cert.not_valid_after_utc - utc_now
        days = left.days  # floor: 0.5 days left is 0, 1 s past expiry is -1
        out.append(
            ExpiryEntry(
                label=label,
                subject=cert.subject.rfc4514_string(),
                not_after=cert.not_valid_after_utc,
                days_left=days,
                renewal_due=left <= dt.timedelta(days=renew_before_days),
                expired=left < dt.timedelta(0),
                fingerprint=fingerprint(cert),
            )
        )
    return sorted(out, key=lambda e: (e.not_after, e.label))
