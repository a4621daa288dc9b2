"""fulfilment.compounding: The BUD engine, hoods and shifts, the batch scheduler, the batch
lifecycle, pharmacist verification and released units.

Laid out by the House issue; its content arrives with issue 10 (Compounding). What other
contexts may use is exported here (docs/architecture.md, "Adding a context").
"""
