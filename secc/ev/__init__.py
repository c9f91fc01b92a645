"""The EV simulator as a product for lab engineers: sans-I/O EVs that decide each request
from the last response (``secc ev``, ``secc demo`` and the benches run them over sockets).

The ISO 15118-2 / DIN SPEC 70121 EV is :class:`secc.ev.iso2.EvSimulator`, with its Plug &
Charge material and signatures in :mod:`secc.ev.pnc2`; the ISO 15118-20 EV is
:class:`secc.ev.iso20.Ev20Simulator`, with its Plug & Charge material and signatures in
:mod:`secc.ev.pnc20` and the opening of an installed contract key in
:mod:`secc.ev.install20`.
"""
