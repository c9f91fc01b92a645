"""Request handlers, one module per message family: ``(ctx, body, now) -> Reply``."""
