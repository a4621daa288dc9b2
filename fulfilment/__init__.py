"""Fulfilment: the contexts from an order to a shipped box (catalogue, orders, compounding,
carriers, shipments), each a sub-package with its own app and manifest."""
