"""OCPP 2.0.1 smart charging (use cases K01-K08, K15-K17 as far as ISO 15118 needs them):
the CSMS's charging profiles, checked, kept durably, combined into the composite schedule
that bounds what the EVSE offers the EV and delivers.

* SetChargingProfile (K01): a profile is checked against the rules of the specification
  (part 2, K01 and 2.2 "Charging profile") before it replaces anything: the EVSE must
  exist; ChargingStationMaxProfile only on evseId 0, TxProfile only on an EVSE with that
  running transaction; ChargingStationExternalConstraints is the station's own; the stack
  level within ``SmartChargingCtrlr.ProfileStackLevel``; periods starting at 0 and
  strictly rising, at most ``PeriodsPerSchedule`` of them, limits not negative; Absolute
  and Recurring schedules need a startSchedule, Recurring a recurrencyKind; validTo after
  validFrom and not past; an Absolute schedule that already ended is refused (one that
  started in the past and still runs is taken from where it is now); no second profile
  of the same purpose, EVSE and stack level whose validity overlaps (same id: replaced).
  A refused profile is answered Rejected with the reason in statusInfo and changes
  nothing.  Accepted profiles are stored in the outbox database (state key
  ``charging_profiles``), so they survive a restart; a TxProfile ends with its transaction.
* ClearChargingProfile (K10), GetChargingProfiles (K09, ReportChargingProfiles after the
  answer), GetCompositeSchedule (K08).
* The composite at a moment: per purpose the highest stack level whose profile is valid
  and whose schedule is running; TxProfile over TxDefaultProfile, a TxDefaultProfile of
  the EVSE over one of evseId 0; the lower of that and ChargingStationMaxProfile.  Amperes
  and watts convert at ``VOLTAGE`` per phase (numberPhases, default 3).
* Into ISO 15118: the composite for the next 24 h becomes the session's
  :class:`~secc.core.events.ChargingScheduleUpdate` (watts) at session start and whenever
  the profiles change while a session runs; the core turns it into the SAScheduleList (-2)
  or the ScheduleExchange schedule (-20) and, while charging under -2, asks the EV to
  renegotiate (EVSENotification ReNegotiation).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from secc.core.actions import EvChargingNeeds, EvChargingSchedule
from secc.core.events import (
    ChargingScheduleUpdate,
    Event,
    SalesTariffFacts,
    ScheduleOffer,
    TariffCost,
    TariffEntry,
)
from secc.ocpp_bridge import mapping
from secc.ocpp_bridge.client import Reply

if TYPE_CHECKING:
    from secc.ocpp_bridge.bridge import Bridge

log = logging.getLogger(__name__)
STATE_KEY = "charging_profiles"
VOLTAGE = 230.0  # volts per phase for the A <-> W conversion
PHASES = 3
MAX_STACK_LEVEL = 8  # SmartChargingCtrlr.ProfileStackLevel
PERIODS_PER_SCHEDULE = 24  # SmartChargingCtrlr.PeriodsPerSchedule
HORIZON = 86400  # seconds of composite schedule handed to a session
UNLIMITED = 1e9  # watts where no profile limits (the core caps it at the EVSE's maximum)
PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")
RECURRENCE = {"Daily": 86400, "Weekly": 7 * 86400}
ENERGY_TRANSFER = {  # ISO 15118 EnergyTransferMode -> OCPP EnergyTransferModeEnumType
    "AC_single_phase_core": "AC_single_phase",
    "AC_three_phase_core": "AC_three_phase",
    "AC": "AC_three_phase",
}
Payload = dict[str, Any]


class ProfileRefusedError(Exception):
    """A profile the rules refuse; the message goes into statusInfo."""


def parse_time(value: object) -> dt.datetime:
    if not isinstance(value, str):
        raise ProfileRefusedError(f"not a date-time: {value!r}")
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProfileRefusedError(f"not a date-time: {value!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _watts(limit: float, unit: str, phases: object) -> float:
    if unit == "W":
        return float(limit)
    n = phases if isinstance(phases, int) and phases > 0 else PHASES
    return float(limit) * VOLTAGE * n


class ProfileBook:
    """The accepted profiles (each ``{"evseId": n, "profile": {...}}`` in wire form) and
    the composite schedule they make."""

    def __init__(
        self,
        load: Callable[[], object],
        save: Callable[[list[Payload]], None],
        evse_ids: Callable[[], Iterable[int]],
        transaction_of: Callable[[int], str | None],
        *,
        max_stack_level: int = MAX_STACK_LEVEL,
        periods_per_schedule: int = PERIODS_PER_SCHEDULE,
    ) -> None:
        stored = load()
        self.entries: list[Payload] = list(stored) if isinstance(stored, list) else []
        self._save = save
        self._evse_ids = evse_ids
        self._transaction_of = transaction_of
        self.max_stack_level = max_stack_level
        self.periods_per_schedule = periods_per_schedule
        self.tx_started: dict[int, dt.datetime] = {}  # evseId -> transaction start (Relative)

    # --- K01 ---------------------------------------------------------------------------

    def check(
        self, evse_id: object, profile: Payload, now: dt.datetime, *, starting: bool = False
    ) -> None:
        """Raise :class:`ProfileRefusedError` when ``profile`` may not be installed on
        ``evse_id`` at ``now`` (``starting``: a TxProfile for a transaction yet to start,
        K05)."""
        if not isinstance(evse_id, int) or (evse_id != 0 and evse_id not in set(self._evse_ids())):
            raise ProfileRefusedError(f"unknown EVSE {evse_id}")
        purpose = profile.get("chargingProfilePurpose")
        if purpose == "ChargingStationExternalConstraints":
            raise ProfileRefusedError("ChargingStationExternalConstraints is not set by the CSMS")
        if purpose not in PURPOSES:
            raise ProfileRefusedError(f"purpose {purpose} is not supported")
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            raise ProfileRefusedError("ChargingStationMaxProfile applies to evseId 0 only")
        if purpose == "TxProfile":
            if evse_id == 0:
                raise ProfileRefusedError("a TxProfile needs an EVSE")
            wanted = profile.get("transactionId")
            running = self._transaction_of(evse_id)
            if not starting and (wanted is None or running is None or wanted != running):
                raise ProfileRefusedError(f"no transaction {wanted} on EVSE {evse_id}")
        level = profile.get("stackLevel")
        if not isinstance(level, int) or not 0 <= level <= self.max_stack_level:
            raise ProfileRefusedError(f"stackLevel {level} outside 0..{self.max_stack_level}")
        kind = profile.get("chargingProfileKind")
        schedules = profile.get("chargingSchedule")
        if not isinstance(schedules, list) or not schedules:
            raise ProfileRefusedError("no chargingSchedule")
        for schedule in schedules:
            self._check_schedule(kind, profile, schedule, now)
        if len(schedules) > 1 or any("salesTariff" in x for x in schedules):
            # ISO 15118 alternatives: each chargingSchedule id is an SAScheduleTupleID
            ids = [x.get("id") for x in schedules]
            if any(not isinstance(i, int) or not 1 <= i <= 255 for i in ids):
                raise ProfileRefusedError(
                    f"chargingSchedule ids {ids}: SAScheduleTupleIDs must be 1..255"
                )
            if len(set(ids)) != len(ids):
                raise ProfileRefusedError(f"chargingSchedule ids {ids} repeat")
            for x in schedules:
                if isinstance(x.get("salesTariff"), dict):
                    check_sales_tariff(x["salesTariff"])
        valid_from = parse_time(profile["validFrom"]) if "validFrom" in profile else None
        valid_to = parse_time(profile["validTo"]) if "validTo" in profile else None
        if valid_to is not None:
            if valid_to <= now:
                raise ProfileRefusedError(f"validTo {profile['validTo']} is past")
            if valid_from is not None and valid_to <= valid_from:
                raise ProfileRefusedError("validTo is not after validFrom")
        for other in self.entries:
            p = other["profile"]
            if (
                p.get("id") != profile.get("id")
                and other["evseId"] == evse_id
                and p.get("chargingProfilePurpose") == purpose
                and p.get("stackLevel") == level
                and _overlap(p, valid_from, valid_to)
            ):
                raise ProfileRefusedError(
                    f"profile {p.get('id')} has the same purpose and stack level on EVSE "
                    f"{evse_id} and overlapping validity"
                )

    def _check_schedule(self, kind: object, profile: Payload, s: Payload, now: dt.datetime) -> None:
        if s.get("chargingRateUnit") not in ("A", "W"):
            raise ProfileRefusedError(f"chargingRateUnit {s.get('chargingRateUnit')}")
        periods = s.get("chargingSchedulePeriod")
        if not isinstance(periods, list) or not periods:
            raise ProfileRefusedError("no chargingSchedulePeriod")
        if len(periods) > self.periods_per_schedule:
            raise ProfileRefusedError(f"more than {self.periods_per_schedule} periods")
        starts = [p.get("startPeriod") for p in periods]
        if starts[0] != 0:
            raise ProfileRefusedError("the first period must start at 0")
        if any(not isinstance(b, int) or b <= a for a, b in itertools.pairwise(starts)):
            raise ProfileRefusedError("periods must start in rising order")
        if any(float(p.get("limit", -1)) < 0 for p in periods):
            raise ProfileRefusedError("a negative limit")
        if kind in ("Absolute", "Recurring") and "startSchedule" not in s:
            raise ProfileRefusedError(f"an {kind} schedule needs startSchedule")
        if kind == "Recurring" and profile.get("recurrencyKind") not in RECURRENCE:
            raise ProfileRefusedError("a Recurring profile needs recurrencyKind Daily or Weekly")
        if kind == "Absolute":
            start = parse_time(s["startSchedule"])
            duration = s.get("duration")
            if isinstance(duration, int) and start + dt.timedelta(seconds=duration) <= now:
                raise ProfileRefusedError(
                    f"the schedule started {s['startSchedule']} and ended before now"
                )

    def install(self, evse_id: int, profile: Payload) -> None:
        """Store a checked profile (replacing one with the same id) durably."""
        entries = [e for e in self.entries if e["profile"].get("id") != profile.get("id")]
        entries.append({"evseId": evse_id, "profile": profile})
        self._save(entries)
        self.entries = entries

    def clear(self, request: Payload) -> int:
        """ClearChargingProfile: remove what the id or the criteria match; how many."""
        wanted = request.get("chargingProfileId")
        criteria = request.get("chargingProfileCriteria") or {}
        keep: list[Payload] = []
        for e in self.entries:
            p = e["profile"]
            if wanted is not None:
                match = p.get("id") == wanted
            else:
                match = bool(criteria) and all(
                    (
                        "evseId" not in criteria or criteria["evseId"] == e["evseId"],
                        "chargingProfilePurpose" not in criteria
                        or criteria["chargingProfilePurpose"] == p.get("chargingProfilePurpose"),
                        "stackLevel" not in criteria
                        or criteria["stackLevel"] == p.get("stackLevel"),
                    )
                )
            if not match:
                keep.append(e)
        removed = len(self.entries) - len(keep)
        if removed:
            self._save(keep)
            self.entries = keep
        return removed

    def end_transaction(self, evse_id: int) -> None:
        """A TxProfile lives as long as its transaction."""
        self.tx_started.pop(evse_id, None)
        keep = [
            e
            for e in self.entries
            if not (
                e["evseId"] == evse_id and e["profile"]["chargingProfilePurpose"] == "TxProfile"
            )
        ]
        if len(keep) != len(self.entries):
            self._save(keep)
            self.entries = keep

    def select(self, request: Payload) -> list[Payload]:
        """GetChargingProfiles: the entries matching evseId and the criteria."""
        evse = request.get("evseId")
        crit = request.get("chargingProfile") or {}
        ids = crit.get("chargingProfileId")
        sources = crit.get("chargingLimitSource")
        out = []
        for e in self.entries:
            p = e["profile"]
            if evse is not None and e["evseId"] != evse:
                continue
            if "chargingProfilePurpose" in crit and crit["chargingProfilePurpose"] != p.get(
                "chargingProfilePurpose"
            ):
                continue
            if "stackLevel" in crit and crit["stackLevel"] != p.get("stackLevel"):
                continue
            if ids and p.get("id") not in ids:
                continue
            if sources and "CSO" not in sources:
                continue
            out.append(e)
        return out

    # --- composite (K08) -----------------------------------------------------------------

    def _limit(
        self, entry: Payload, t: dt.datetime, origin: dt.datetime, alt: int = 0
    ) -> float | None:
        """The profile's limit (W) at ``t``, None where it does not apply; ``alt``: which
        of its chargingSchedules (the last one where it has fewer)."""
        p = entry["profile"]
        if "validFrom" in p and t < parse_time(p["validFrom"]):
            return None
        if "validTo" in p and t >= parse_time(p["validTo"]):
            return None
        s = _schedule(p, alt)
        start = self._start(entry, t, origin, alt)
        if start is None or t < start:
            return None
        elapsed = (t - start).total_seconds()
        duration = s.get("duration")
        if isinstance(duration, int) and elapsed >= duration:
            return None
        chosen = None
        for period in s["chargingSchedulePeriod"]:
            if period["startPeriod"] <= elapsed:
                chosen = period
        if chosen is None:
            return None
        return _watts(chosen["limit"], s["chargingRateUnit"], chosen.get("numberPhases"))

    def _start(
        self, entry: Payload, t: dt.datetime, origin: dt.datetime, alt: int = 0
    ) -> dt.datetime | None:
        p = entry["profile"]
        s = _schedule(p, alt)
        kind = p["chargingProfileKind"]
        if kind == "Relative":
            return self.tx_started.get(entry["evseId"], origin)
        start = parse_time(s["startSchedule"])
        if kind == "Recurring" and t >= start:
            step = RECURRENCE[p["recurrencyKind"]]
            start += dt.timedelta(seconds=step * ((t - start).total_seconds() // step))
        return start

    def _edges(
        self, entry: Payload, t0: dt.datetime, t1: dt.datetime, alt: int = 0
    ) -> set[dt.datetime]:
        """The moments in [t0, t1) where this profile's limit may change."""
        p = entry["profile"]
        s = _schedule(p, alt)
        out = {parse_time(p[k]) for k in ("validFrom", "validTo") if k in p}
        starts = []
        first = self._start(entry, t0, t0, alt)
        if first is not None:
            starts.append(first)
            if p["chargingProfileKind"] == "Recurring":
                step = dt.timedelta(seconds=RECURRENCE[p["recurrencyKind"]])
                nxt = first + step
                while nxt < t1:
                    starts.append(nxt)
                    nxt += step
        for start in starts:
            for period in s["chargingSchedulePeriod"]:
                out.add(start + dt.timedelta(seconds=period["startPeriod"]))
            if isinstance(s.get("duration"), int):
                out.add(start + dt.timedelta(seconds=s["duration"]))
        return {t for t in out if t0 < t < t1}

    def _applicable(self, evse_id: int) -> list[Payload]:
        tx = self._transaction_of(evse_id) if evse_id else None
        out = []
        for e in self.entries:
            p = e["profile"]
            purpose = p["chargingProfilePurpose"]
            station = purpose == "ChargingStationMaxProfile"
            default = purpose == "TxDefaultProfile" and e["evseId"] in (0, evse_id)
            ours = e["evseId"] == evse_id and p.get("transactionId") == tx
            if station or default or (purpose == "TxProfile" and ours):
                out.append(e)
        return out

    def limit_at(
        self, evse_id: int, t: dt.datetime, origin: dt.datetime, alt: int = 0
    ) -> float | None:
        """The composite limit (W) of ``evse_id`` at ``t``; None: no profile limits."""
        best: dict[tuple[str, bool], tuple[int, float]] = {}
        for e in self._applicable(evse_id):
            limit = self._limit(e, t, origin, alt)
            if limit is None:
                continue
            p = e["profile"]
            key = (p["chargingProfilePurpose"], e["evseId"] != 0)
            if key not in best or p["stackLevel"] > best[key][0]:
                best[key] = (p["stackLevel"], limit)
        tx = (
            best.get(("TxProfile", True))
            or best.get(("TxDefaultProfile", True))
            or best.get(("TxDefaultProfile", False))
        )
        station = best.get(("ChargingStationMaxProfile", False))
        if evse_id == 0:
            tx = None
        limits = [x[1] for x in (tx, station) if x is not None]
        return min(limits) if limits else None

    def composite(
        self, evse_id: int, t0: dt.datetime, seconds: int, alt: int = 0
    ) -> list[tuple[int, float | None]]:
        """(offset seconds, limit W or None) where the composite changes, from offset 0;
        ``alt``: with each profile's chargingSchedule ``alt`` (ISO 15118 alternatives)."""
        t1 = t0 + dt.timedelta(seconds=seconds)
        edges = {t0}
        for e in self._applicable(evse_id):
            edges |= self._edges(e, t0, t1, alt)
        out: list[tuple[int, float | None]] = []
        for t in sorted(edges):
            limit = self.limit_at(evse_id, t, t0, alt)
            if not out or out[-1][1] != limit:
                out.append((int((t - t0).total_seconds()), limit))
        return out

    def session_entries(
        self, evse_id: int, now: dt.datetime, alt: int = 0
    ) -> tuple[tuple[int, float, int | None], ...]:
        """The composite for the next 24 h as ChargingScheduleUpdate entries; empty when
        no profile limits anything."""
        periods = self.composite(evse_id, now, HORIZON, alt)
        if all(limit is None for _, limit in periods):
            return ()
        out = []
        for i, (start, limit) in enumerate(periods):
            end = periods[i + 1][0] if i + 1 < len(periods) else HORIZON
            out.append((start, UNLIMITED if limit is None else limit, end - start))
        return tuple(out)

    def leading(self, evse_id: int, now: dt.datetime) -> Payload | None:
        """The profile that sets the EVSE's transaction limit now (TxProfile over the
        EVSE's TxDefaultProfile over evseId 0's, the highest stack level in force)."""
        rank = {"TxProfile": 2, "TxDefaultProfile": 0}
        best: tuple[int, int, int] | None = None
        found = None
        for e in self._applicable(evse_id):
            p = e["profile"]
            purpose = p["chargingProfilePurpose"]
            if purpose not in rank or self._limit(e, now, now) is None:
                continue
            key = (rank[purpose] + (e["evseId"] != 0), p["stackLevel"], len(p["chargingSchedule"]))
            if best is None or key > best:
                best, found = key, p
        return found

    def session_offers(self, evse_id: int, now: dt.datetime) -> tuple[ScheduleOffer, ...]:
        """ISO 15118 alternatives: when the leading profile has more than one
        chargingSchedule or a salesTariff, one offer per chargingSchedule (its id as the
        SAScheduleTupleID, the composite with that schedule, its salesTariff); else ()."""
        lead = self.leading(evse_id, now)
        if lead is None:
            return ()
        schedules = lead["chargingSchedule"]
        if len(schedules) < 2 and not any("salesTariff" in s for s in schedules):
            return ()
        out = []
        for alt, schedule in enumerate(schedules):
            entries = self.session_entries(evse_id, now, alt)
            tariff = schedule.get("salesTariff")
            out.append(
                ScheduleOffer(
                    int(schedule["id"]),
                    entries,
                    sales_tariff(tariff) if isinstance(tariff, dict) else None,
                )
            )
        return tuple(out)


def _schedule(profile: Payload, alt: int) -> Payload:
    """chargingSchedule ``alt`` of a profile (its last where it has fewer)."""
    schedules = profile["chargingSchedule"]
    return cast(Payload, schedules[min(alt, len(schedules) - 1)])


def sales_tariff(t: Payload) -> SalesTariffFacts:
    """An OCPP SalesTariffType (checked by :func:`check_sales_tariff`) as session facts."""
    entries = []
    for e in t["salesTariffEntry"]:
        interval = e["relativeTimeInterval"]
        consumption = tuple(
            (
                float(c["startValue"]),
                tuple(
                    TariffCost(k["costKind"], int(k["amount"]), k.get("amountMultiplier"))
                    for k in c["cost"]
                ),
            )
            for c in e.get("consumptionCost", ())
        )
        entries.append(
            TariffEntry(
                int(interval["start"]),
                interval.get("duration"),
                e.get("ePriceLevel"),
                consumption,
            )
        )
    return SalesTariffFacts(
        int(t["id"]), tuple(entries), t.get("salesTariffDescription"), t.get("numEPriceLevels")
    )


def check_sales_tariff(t: Payload) -> None:
    """Refuse a salesTariff ISO 15118-2 cannot carry (SalesTariffID and ePriceLevel /
    numEPriceLevels 0..255 as unsignedByte, SalesTariffID at least 1, entry starts
    rising from 0 within 16777214 s, durations at most 86400 s, amounts unsignedInt,
    startValues not negative, no price level above numEPriceLevels when given)."""
    tariff_id = t.get("id")
    if not isinstance(tariff_id, int) or not 1 <= tariff_id <= 255:
        raise ProfileRefusedError(f"salesTariff id {tariff_id} outside ISO 15118-2's 1..255")
    levels = t.get("numEPriceLevels")
    if levels is not None and not 0 <= levels <= 255:
        raise ProfileRefusedError(f"numEPriceLevels {levels} outside 0..255")
    last = -1
    for e in t.get("salesTariffEntry", ()):
        interval = e.get("relativeTimeInterval", {})
        start, duration = interval.get("start"), interval.get("duration")
        if not isinstance(start, int) or not last < start <= 16777214 or (last < 0 < start):
            raise ProfileRefusedError(
                "salesTariffEntry starts must rise from 0 (at most 16777214 s)"
            )
        last = start
        if duration is not None and not 0 <= duration <= 86400:
            raise ProfileRefusedError(f"salesTariffEntry duration {duration} outside 0..86400")
        level = e.get("ePriceLevel")
        most = 255 if levels is None else levels
        if level is not None and not 0 <= level <= most:
            raise ProfileRefusedError(f"ePriceLevel {level} outside 0..{most}")
        for c in e.get("consumptionCost", ()):
            if float(c.get("startValue", -1)) < 0:
                raise ProfileRefusedError("a consumptionCost startValue below 0")
            for k in c.get("cost", ()):
                if not 0 <= k.get("amount", -1) <= 0xFFFFFFFF:
                    raise ProfileRefusedError(f"cost amount {k.get('amount')} not unsignedInt")


def _overlap(p: Payload, valid_from: dt.datetime | None, valid_to: dt.datetime | None) -> bool:
    a = parse_time(p["validFrom"]) if "validFrom" in p else None
    b = parse_time(p["validTo"]) if "validTo" in p else None
    starts_before_other_ends = valid_to is None or a is None or a < valid_to
    ends_after_other_starts = b is None or valid_from is None or valid_from < b
    return starts_before_other_ends and ends_after_other_starts


class SmartCharging:
    """The station's profiles (on the primary bridge) and what they mean for sessions."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        queue = bridge.queue
        self.book = ProfileBook(
            lambda: queue.get_state(STATE_KEY),
            lambda entries: queue.set_state({STATE_KEY: entries}),
            bridge.evses.keys,
            self._transaction_of,
        )
        # the station's own maximum (watts) when set; else the EVSEs' configured limits
        self.local_limit_w: float | None = None

    def local_limit(self, evse_id: int) -> float | None:
        """The EVSE's own limit in watts (``BridgeConfig.max_power_w``, from its configured
        power limits), for evseId 0 the sum over the station's EVSEs; None when unknown."""
        if self.local_limit_w is not None:
            return self.local_limit_w
        configs = [b.config for n, b in self.bridge.evses.items() if evse_id in (0, n)]
        limits = [c.max_power_w for c in configs]
        if not limits or any(w is None for w in limits):
            return None
        return float(sum(w for w in limits if w is not None))

    def _transaction_of(self, evse_id: int) -> str | None:
        b = self.bridge.evses.get(evse_id)
        if b is None:
            return None
        tx = b.transaction
        return str(tx["id"]) if tx is not None else b.opening

    def push(self, evse_id: int | None = None, *, starting: bool = False) -> None:
        """Give the running session(s) the composite now in force (``starting``: the
        session of ``evse_id`` has just begun, its transaction is still being opened)."""
        now = self.bridge.utc_now()
        for number, b in self.bridge.evses.items():
            if evse_id not in (None, 0, number) or (b.transaction is None and not starting):
                continue
            entries = self.book.session_entries(number, now)
            offers = self.book.session_offers(number, now) if entries else ()
            if offers:
                entries = offers[0].entries
            if entries or not starting:  # empty: no CSMS limit any more (profiles cleared)
                b.emit(cast(Event, ChargingScheduleUpdate(entries, offers)))

    def session_started(self, evse_id: int) -> None:
        """A session began: its schedule before the EV asks for charge parameters."""
        self.book.tx_started[evse_id] = self.bridge.utc_now()
        self.push(evse_id, starting=True)

    def session_ended(self, evse_id: int) -> None:
        self.book.end_transaction(evse_id)

    # --- what the EV said (K15, K17) --------------------------------------------------------

    def ev_reported(self, evse_id: int, action: EvChargingNeeds | EvChargingSchedule) -> None:
        """NotifyEVChargingNeeds / NotifyEVChargingSchedule, as a follow-up task (the CSMS
        may answer the needs with SetChargingProfile while the EV waits, Ongoing)."""
        now = self.bridge.utc_now()
        if isinstance(action, EvChargingNeeds):
            payload = {"evseId": evse_id, "chargingNeeds": charging_needs(action, now)}
            if action.max_schedule_tuples:
                payload["maxScheduleTuples"] = action.max_schedule_tuples
            name = "NotifyEVChargingNeeds"
        else:
            periods = []
            for start, watts, phases in action.entries:
                period: Payload = {"startPeriod": start, "limit": round(watts, 1)}
                if phases:
                    period["numberPhases"] = phases
                periods.append(period)
            payload = {
                "evseId": evse_id,
                "timeBase": mapping.ocpp_timestamp(now),
                "chargingSchedule": {
                    "id": action.schedule_id,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": periods,
                },
            }
            name = "NotifyEVChargingSchedule"
        client = self.bridge.client

        async def notify() -> None:
            answer = await client.call(name, payload)
            log.info("%s: %s", name, answer.get("status"))

        client.spawn(notify(), name)

    # --- K05: the chargingProfile of RequestStartTransaction ---------------------------------

    def start_profile_problem(self, evse_id: int, profile: object) -> str:
        """Why RequestStartTransaction's chargingProfile cannot be used on ``evse_id``
        ("" when it can): it must be a TxProfile (F01.FR.09 / F02), carry no transactionId
        other than the EVSE's running one, and pass K01's checks."""
        if not isinstance(profile, dict):
            return "chargingProfile is not an object"
        if profile.get("chargingProfilePurpose") != "TxProfile":
            purpose = profile.get("chargingProfilePurpose")
            return f"chargingProfilePurpose {purpose} is not TxProfile"
        running = self._transaction_of(evse_id)
        wanted = profile.get("transactionId")
        if wanted is not None and wanted != running:
            return f"transactionId {wanted} is not a running transaction here"
        try:
            self.book.check(evse_id, profile, self.bridge.utc_now(), starting=True)
        except ProfileRefusedError as exc:
            return str(exc)
        return ""

    def apply_start_profile(
        self, evse_id: int, profile: Payload, transaction_id: str, *, starting: bool = False
    ) -> None:
        """Install a RequestStartTransaction's TxProfile for the transaction it started
        (``starting``: being opened now) and give it to the session; checked again, as
        time has passed since the request."""
        profile = {**profile, "transactionId": transaction_id}
        try:
            self.book.check(evse_id, profile, self.bridge.utc_now(), starting=starting)
            self.book.install(evse_id, profile)
        except (ProfileRefusedError, sqlite3.Error, OSError) as exc:
            log.error("RequestStartTransaction profile %s not applied: %s", profile.get("id"), exc)
            return
        log.info("remote start TxProfile %s applies to %s", profile.get("id"), transaction_id)
        self.push(evse_id, starting=starting)

    # --- CSMS calls ------------------------------------------------------------------------

    def set_charging_profile(self, p: Payload) -> Reply:
        evse_id = p.get("evseId")
        profile = p.get("chargingProfile")
        if not isinstance(profile, dict):
            return Reply({"status": "Rejected", "statusInfo": _info("no chargingProfile", "Other")})
        try:
            self.book.check(evse_id, profile, self.bridge.utc_now())
            assert isinstance(evse_id, int)
            self.book.install(evse_id, profile)
        except ProfileRefusedError as exc:
            log.warning("SetChargingProfile %s refused: %s", profile.get("id"), exc)
            code = "UnknownEvse" if str(exc).startswith("unknown EVSE") else "InvalidProfile"
            return Reply({"status": "Rejected", "statusInfo": _info(str(exc), code)})
        except (sqlite3.Error, OSError) as exc:  # e.g. a full disk: nothing was changed
            log.error("SetChargingProfile %s not stored: %s", profile.get("id"), exc)
            return Reply({"status": "Rejected", "statusInfo": _info(f"not stored: {exc}", "Other")})
        self.push(evse_id)
        return Reply({"status": "Accepted"})

    def clear_charging_profile(self, p: Payload) -> Reply:
        removed = self.book.clear(p)
        if removed:
            self.push()
        return Reply({"status": "Accepted" if removed else "Unknown"})

    def get_charging_profiles(self, p: Payload) -> Reply:
        found = self.book.select(p)
        if not found:
            return Reply({"status": "NoProfiles"})
        by_evse: dict[int, list[Payload]] = {}
        for e in found:
            by_evse.setdefault(e["evseId"], []).append(e["profile"])
        request_id = p.get("requestId")
        client = self.bridge.client

        async def report() -> None:
            items = sorted(by_evse.items())
            for i, (evse_id, profiles) in enumerate(items):
                await client.call(
                    "ReportChargingProfiles",
                    {
                        "requestId": request_id,
                        "chargingLimitSource": "CSO",
                        "evseId": evse_id,
                        "chargingProfile": profiles,
                        "tbc": i + 1 < len(items),
                    },
                )

        return Reply({"status": "Accepted"}, after=report)

    def get_composite_schedule(self, p: Payload) -> Reply:
        evse_id = p.get("evseId")
        duration = p.get("duration")
        unit = p.get("chargingRateUnit") or "W"
        if not isinstance(evse_id, int) or (evse_id != 0 and evse_id not in self.bridge.evses):
            return Reply(
                {
                    "status": "Rejected",
                    "statusInfo": _info(f"unknown EVSE {evse_id}", "UnknownEvse"),
                }
            )
        if not isinstance(duration, int) or duration <= 0:
            return Reply({"status": "Rejected", "statusInfo": _info("duration", "Other")})
        now = self.bridge.utc_now()  # exact: a profile that began this second applies
        periods: list[dict[str, object]] = []
        local = self.local_limit(evse_id)  # K08: the EVSE's own limits are the base
        for start, limit in self.book.composite(evse_id, now, duration):
            watts = local if limit is None else limit if local is None else min(limit, local)
            if watts is None:
                return Reply(
                    {
                        "status": "Rejected",
                        "statusInfo": _info("no limit known for the window", "Other"),
                    }
                )
            value = round(watts if unit == "W" else watts / (VOLTAGE * PHASES), 1)
            if not periods or periods[-1]["limit"] != value:  # capped periods may repeat
                periods.append({"startPeriod": start, "limit": value})
        schedule = {
            "evseId": evse_id,
            "duration": duration,
            "scheduleStart": mapping.ocpp_timestamp(now),
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods,
        }
        return Reply({"status": "Accepted", "schedule": schedule})

    def handlers(self) -> dict[str, Callable[[Payload], Reply]]:
        return {
            "SetChargingProfile": self.set_charging_profile,
            "ClearChargingProfile": self.clear_charging_profile,
            "GetChargingProfiles": self.get_charging_profiles,
            "GetCompositeSchedule": self.get_composite_schedule,
        }


def charging_needs(needs: EvChargingNeeds, now: dt.datetime) -> Payload:
    """ChargingNeedsType of OCPP 2.0.1 from the EV's charge parameters."""
    mode = needs.energy_transfer
    out: Payload = {"requestedEnergyTransfer": ENERGY_TRANSFER.get(mode, "DC")}
    if needs.departure_time is not None:
        out["departureTime"] = mapping.ocpp_timestamp(
            now + dt.timedelta(seconds=needs.departure_time)
        )
    if out["requestedEnergyTransfer"] == "DC":
        dc: Payload = {
            "evMaxCurrent": int(needs.max_current),
            "evMaxVoltage": int(needs.max_voltage),
        }
        optional = {
            "energyAmount": needs.energy_amount,
            "evMaxPower": needs.max_power,
            "stateOfCharge": needs.soc,
            "evEnergyCapacity": needs.energy_capacity,
            "fullSoC": needs.full_soc,
            "bulkSoC": needs.bulk_soc,
        }
        dc.update({k: int(v) for k, v in optional.items() if v is not None})
        out["dcChargingParameters"] = dc
    else:
        out["acChargingParameters"] = {
            "energyAmount": int(needs.energy_amount or 0),
            "evMinCurrent": int(needs.min_current or 0),
            "evMaxCurrent": int(needs.max_current),
            "evMaxVoltage": int(needs.max_voltage),
        }
    return out


def _info(reason: str, code: str = "InvalidProfile") -> dict[str, object]:
    return {"reasonCode": code, "additionalInfo": reason[:512]}
