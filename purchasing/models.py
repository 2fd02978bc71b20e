"""Suppliers and purchase orders (built out by the purchasing issue)."""
