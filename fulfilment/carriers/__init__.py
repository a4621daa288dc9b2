"""fulfilment.carriers: The carrier port, the Shippo adapter and its offline sandbox, the local
courier, the transit calendar and service selection.

Laid out by the House issue; its content arrives with issue 13 (Carriers). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
