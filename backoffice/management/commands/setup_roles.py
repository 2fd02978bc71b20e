"""Create or update the staff role groups (idempotent): see backoffice/roles.py."""

from django.core.management.base import BaseCommand, CommandError

from backoffice.roles import MissingPermissions, roles_setup


class Command(BaseCommand):
    help = "Create or update the groups Warehouse staff, Purchasing and Inventory manager."

    def handle(self, *args, **options):
        try:
            outcome = roles_setup()
        except MissingPermissions as exc:
            raise CommandError(str(exc)) from exc
        for name, (created, count) in outcome.items():
            verb = "created" if created else "up to date"
            self.stdout.write(f"Role {name!r}: {verb}, {count} permissions.")
