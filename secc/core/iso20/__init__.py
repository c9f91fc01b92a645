"""The ISO 15118-20 family of the session core.

:class:`secc.core.session.SeccSession` runs the appHandshake; when it selects a -20
namespace, every later request goes through this package: :mod:`.states` (the states and
the legal-transition table, one per energy family), :mod:`.setup` (SessionSetup,
Authorization, services, SessionStop), :mod:`.power` (ScheduleExchange, PowerDelivery),
:mod:`.ac` and :mod:`.dc` (charge parameters, loops incl. AC_BPT/DC_BPT discharge, DC
cable check, pre-charge, welding detection), :mod:`.pnc` (Plug & Charge: the PnC offer and
authorization, certificate installation forwarding, metering confirmation), over the
shared events, actions, config and :class:`~secc.core.context.Context`.
"""

from secc.core.iso20.common import Iso20State

__all__ = ["Iso20State"]
