"""The ISO 15118-2 / DIN SPEC 70121 family: :mod:`.states` (the legal-transition tables of
both), request handlers ``(ctx, body, now) -> Reply`` one module per message family, and
:mod:`.din` (DIN's differences).  The handshake before it is :mod:`secc.core.handshake`."""
