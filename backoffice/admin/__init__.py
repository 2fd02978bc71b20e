"""Every Django-admin registration and custom admin page, one module per app.

The admin's `autodiscover` imports `backoffice.admin` (this package); importing the
modules below registers their ModelAdmins on `admin.site`. The apps themselves
(`inventory`, `purchasing`, `warehouses`, `api`) have no admin module: the back office is
an edge over their services, and the imports run one way (docs/ARCHITECTURE.md).

* `users`: the user page with the warehouses each staff user works at;
* `api`: API clients (list, revoke; keys are made by `create_api_client`);
* `warehouses`: warehouses;
* `inventory`: products (stock chart, stock policy), inventory rows, the ledger,
  reservations;
* `purchasing`: suppliers, product-supplier links, purchase orders and their
  receive page;
* `transfers`: two-step transfers (in transit, received) and their receive page.

The stock pages (cycle count, transfer, receive, bulk receive) are views in
`backoffice/views.py`, their forms in `backoffice/forms.py`.
"""

from . import api, inventory, purchasing, transfers, users, warehouses

__all__ = ["api", "inventory", "purchasing", "transfers", "users", "warehouses"]
