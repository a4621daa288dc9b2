"""fulfilment.orders: Patients, prescribers, therapy orders, intake (API, CSV, FHIR R4), dose
arithmetic and expansion into dose units.

Laid out by the House issue; its content arrives with issue 9 (Orders). What other contexts may
use is exported here (docs/architecture.md, "Adding a context").
"""
