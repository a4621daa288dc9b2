"""coldchain.loggers: The temperature loggers: serial codec, driver, simulator, fleet, readings,
analysis (MKT, alarms, excursions), importers, excursion cases, fridges.

Laid out by the House issue; its content arrives with issue 12 (Loggers). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
