"""``secc commission``: bring a station from "received" to "Plug & Charge ready".

Checks are small objects (:class:`~secc.commission.model.Check`: name, title,
``run(ctx) -> Result``) run in order by :func:`~secc.commission.runner.commission`; each
result is PASS / WARN / FAIL / SKIP with the reason and the fix.  Everything that touches
the world (clock, clock synchronisation, HAL boards, network interfaces, SDP, the PLC
modem) comes through :class:`~secc.commission.context.Deps`, so tests replace exactly
that and run the rest for real (the simulated HAL, a test CSMS, a real certificate store).

Modules: ``model`` (results, checks, use-case presets, answers), ``context`` (what the
checks share), ``station_checks`` (config, clock, HAL self-test, network/SDP),
``pki_checks`` (CSMS, certificates, Plug & Charge settings), ``csms`` (the tool's OCPP
link), ``system`` (clock sync, interfaces, SDP query), ``runner`` (provisioning, order,
progress), ``report`` (JSON, Markdown, HTML).
"""
