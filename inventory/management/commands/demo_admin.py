"""Create the demo superuser for the embedded default and print its login."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "stockroom-demo"


class Command(BaseCommand):
    help = "Create the demo admin login (refused when DEBUG is off)."

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
        self.stdout.write(
            f"Demo admin: http://127.0.0.1:8000/admin/  user {DEMO_USERNAME!r}  "
            f"password {DEMO_PASSWORD!r}"
        )
