"""The ``secc`` command. Composition root: nothing imports this package."""
