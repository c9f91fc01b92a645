"""SLAC (ISO 15118-3), EVSE side: MME codec, matcher, AF_PACKET link, modem probe."""
