"""fulfilment.catalogue: Products and their identifiers (NDC, GTIN, GS1), lots, stock, FEFO
allocation and recall status.

Laid out by the House issue; its content arrives with issue 8 (Catalogue). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
