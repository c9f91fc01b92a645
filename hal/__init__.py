"""hal: hardware abstraction layer for the charge controller (CP, contactors, meter, PLC).

Vocabulary in :mod:`hal.types`, capability interfaces and :class:`hal.api.Board` in
:mod:`hal.api`, backends by name in :mod:`hal.registry`, the IEC 61851 charging control in
:mod:`hal.control` (pure) and :mod:`hal.charging` (asyncio), the conformance suite in
:mod:`hal.testing`.  See docs/hal.md.  ``hal`` never imports ``secc``.
"""
