"""Create the demo superuser (and one demo staff user per role) and print the logins."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from backoffice.models import StaffWarehouse
from backoffice.roles import INVENTORY_MANAGER, PURCHASING, WAREHOUSE_STAFF, roles_setup
from warehouses.models import Warehouse

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "stockroom-demo"
# Demo staff users, one per role (same password): see docs/STAFF_GUIDE.md.
DEMO_STAFF = {"staff": WAREHOUSE_STAFF, "buyer": PURCHASING, "manager": INVENTORY_MANAGER}


class Command(BaseCommand):
    help = "Create the demo admin login and demo staff users (refused when DEBUG is off)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_admin only runs with DEBUG on (the embedded default).")
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        roles_setup()
        for username, role in DEMO_STAFF.items():
            staff, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True}
            )
            if created:
                staff.set_password(DEMO_PASSWORD)
                staff.save()
            staff.groups.add(Group.objects.get(name=role))
            if role != INVENTORY_MANAGER:  # managers act everywhere; the others where they work
                for warehouse in Warehouse.objects.all():
                    StaffWarehouse.objects.get_or_create(user=staff, warehouse=warehouse)
        self.stdout.write(
            f"Demo admin: http://127.0.0.1:8000/admin/  user {DEMO_USERNAME!r}  "
            f"password {DEMO_PASSWORD!r}"
        )
        self.stdout.write(
            "Demo staff (same password): "
            + ", ".join(f"{name!r} ({role})" for name, role in DEMO_STAFF.items())
        )
