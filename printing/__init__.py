"""printing: Documents (plain data in, PDF / ZPL / SVG bytes out), barcodes, printers and print
jobs. Knows nothing of orders or patients.

Laid out by the House issue; its content arrives with issue 15 (Printing). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
