"""fulfilment.shipments: The shipment aggregate (parcels, items, state machine), label purchase
(claimed first), tracking events, at-risk alerts and notifications.

Laid out by the House issue; its content arrives with issue 14 (Shipments). What other contexts
may use is exported here (docs/architecture.md, "Adding a context").
"""
