"""The admin site for staff: Django's AdminSite plus the back-office pages.

* the index is the staff start page (what needs attention, today's movements);
* /admin/backoffice/cycle-count/, …/transfer/ and …/receive/ are the stock
  pages, wrapped in `admin_view` (staff login, CSRF) and checking their own
  permission (403 without it);
* /admin/backoffice/returns/ (the returns dock) and …/states/ (moving units
  between sellable, damaged and quality control) are backoffice/dock.py's;
* /admin/backoffice/lookup/?code=… answers the scan inputs (a SKU in any case
  or a barcode -> the product, JSON);
* every admin page gets `backoffice_actions`: the actions the user may take,
  shown on the start page and in the header.
"""

from django.contrib import admin
from django.urls import path


class StockroomAdminSite(admin.AdminSite):
    site_header = "Stockroom back office"
    site_title = "Stockroom"
    index_title = "Start page"
    index_template = "backoffice/index.html"
    # "View site" leads to the front door (inventory_site/views.py): what Stockroom
    # is, the API docs, health and (with DEBUG) the demo logins and SKUs.
    site_url = "/"
    # The start page lists every model; the sidebar would only take width from
    # the wide ledger and inventory lists.
    enable_nav_sidebar = False

    def get_urls(self):
        from . import dock, views

        urls = [
            path(
                "backoffice/returns/",
                self.admin_view(dock.returns_view),
                name="backoffice_returns",
            ),
            path(
                "backoffice/states/",
                self.admin_view(dock.state_move_view),
                name="backoffice_state_move",
            ),
            path(
                "backoffice/cycle-count/",
                self.admin_view(views.cycle_count_view),
                name="backoffice_cycle_count",
            ),
            path(
                "backoffice/transfer/",
                self.admin_view(views.transfer_view),
                name="backoffice_transfer",
            ),
            path(
                "backoffice/receive/",
                self.admin_view(views.receive_view),
                name="backoffice_receive",
            ),
            path(
                "backoffice/lookup/",
                self.admin_view(views.lookup_view),
                name="backoffice_lookup",
            ),
        ]
        return urls + super().get_urls()

    def login(self, request, extra_context=None):
        """Django's admin login, refused with 429 after too many failures (login_throttle)."""
        from django.template.response import TemplateResponse

        from . import login_throttle

        if request.method != "POST":
            return super().login(request, extra_context)
        if login_throttle.is_locked_out(request):
            return TemplateResponse(
                request,
                "backoffice/login_locked.html",
                {**self.each_context(request), "title": "Too many failed logins"},
                status=429,
            )
        response = super().login(request, extra_context)
        if response.status_code == 302:
            login_throttle.record_success(request)
        else:
            login_throttle.record_failure(request)
        return response

    def each_context(self, request):
        from .views import actions_for

        context = super().each_context(request)
        context["backoffice_actions"] = actions_for(request.user)
        return context

    def index(self, request, extra_context=None):
        from .selectors import start_page

        context = {**start_page(user=request.user), **(extra_context or {})}
        return super().index(request, context)
