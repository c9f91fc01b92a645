"""``Context.scheduled_power`` (asked by the charging loop for every message while a
CSMS schedule is set) gives what the schedule as seen from now
(``Context.csms_entries``) says: the first entry not ended, of the tuple the EV chose."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from secc.core.config import ScheduleEntry, SessionConfig
from secc.core.context import Context
from secc.core.events import ScheduleOffer

entry = st.tuples(
    st.integers(0, 100),
    st.floats(-5000, 60000, allow_nan=False),
    st.one_of(st.none(), st.integers(0, 50)),
)
entries = st.lists(entry, max_size=4).map(lambda es: tuple(sorted(es, key=lambda e: e[0])))


@settings(max_examples=300, deadline=None)
@given(
    schedule=st.one_of(st.none(), entries),
    offers=st.lists(st.tuples(st.integers(1, 4), entries), max_size=3),
    chosen=st.integers(1, 4),
    origin=st.one_of(st.integers(0, 100).map(float), st.floats(0, 100)),
    data=st.data(),
)
def test_scheduled_power_is_the_first_entry_in_force(
    schedule: tuple[tuple[int, float, int | None], ...] | None,
    offers: list[tuple[int, tuple[tuple[int, float, int | None], ...]]],
    chosen: int,
    origin: float,
    data: st.DataObject,
) -> None:
    ctx = Context(
        config=SessionConfig(),
        random_bytes=bytes,
        utc_now=lambda: dt.datetime.now(dt.UTC),
    )
    ctx.csms_schedule = (
        None if schedule is None else tuple(ScheduleEntry(s, p, d) for s, p, d in schedule)
    )
    ctx.csms_offers = tuple(ScheduleOffer(tuple_id=i, entries=es) for i, es in offers)
    ctx.sa_schedule_tuple_id = chosen
    ctx.schedule_origin = origin
    # the ends of the entries (an entry ends exactly then), next to them, or anywhere
    ends = [s + d for es in (schedule or (), *(es for _, es in offers)) for s, _, d in es if d]
    whole = st.sampled_from(ends) if ends else st.integers(0, 160)
    elapsed = data.draw(
        st.one_of(
            whole, whole.map(lambda e: e + 1), whole.map(lambda e: e + 0.5), st.floats(0, 300)
        )
    )
    for now in (origin + elapsed, float(int(origin) + elapsed)):
        seen = ctx.csms_entries(now)
        assert ctx.scheduled_power(now) == (seen[0].max_power if seen else None)
