"""The shared kernel: settings, database, queue, audit, identity, errors, clock, logging."""

__version__ = "0.1.0"
