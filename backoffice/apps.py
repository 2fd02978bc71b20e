"""App configs: the back office itself, and the admin app wired to its site.

`StockroomAdminConfig` replaces `django.contrib.admin` in INSTALLED_APPS so that
`admin.site` (what every app registers its models on) is a
`backoffice.sites.StockroomAdminSite`: the admin index becomes the staff start
page and the cycle count, transfer and receive pages live under /admin/backoffice/.
"""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BackofficeConfig(AppConfig):
    default = True
    name = "backoffice"
    verbose_name = "Back office"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.core import checks

        checks.register(_trusted_proxies_check)


def _trusted_proxies_check(app_configs=None, **kwargs):
    """STOCKROOM_TRUSTED_PROXIES must parse (`manage.py check`, migrate, runserver)."""
    from django.core import checks
    from django.core.exceptions import ImproperlyConfigured

    from .login_throttle import trusted_proxies

    try:
        trusted_proxies()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="backoffice.E001")]
    return []


# Subclassed through the module: a class imported here by name would count as
# a second default config for this app.
class StockroomAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "backoffice.sites.StockroomAdminSite"
