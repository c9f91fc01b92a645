"""hal: hardware abstraction layer for the charge controller (CP, contactors, meter, PLC)."""
