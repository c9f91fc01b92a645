"""HAL backends.  Import them through :mod:`hal.registry`, which knows their extras."""
