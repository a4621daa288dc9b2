"""coldchain.packout: The thermal model, shippers, coolants, ambient profiles, the pack-out planner
and its calibration.

Laid out by the House issue; its content arrives with issue 11 (Pack-out). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
