"""Safety MCU on a UART: framed protocol (docs/mcu-protocol.md), asyncio link, simulator."""
