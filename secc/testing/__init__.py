"""Shipped fakes for tests, the lab and the CLI: FakeClock, the EV simulator, a fake EVSE
and station, and a harness that runs them against the real core through the real codec.
Production code never imports this package."""
