"""`manage.py create_api_client NAME --scope SCOPE [--scope ...]`: prints the key last.

The key is shown once; only its SHA-256 hash is stored.
"""

from django.core.management.base import BaseCommand, CommandError

from api.models import Scope
from api.services import api_client_create
from inventory import errors


class Command(BaseCommand):
    help = "Create an API client and print its key (alone, on the last line)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope", action="append", required=True, choices=Scope.values, dest="scopes"
        )

    def handle(self, *args, name, scopes, **options):
        try:
            client, key = api_client_create(name=name, scopes=scopes)
        except errors.InventoryError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Created API client {client.name!r} with scopes {', '.join(client.scopes)}. "
            "Store this key now; it is not shown again:"
        )
        self.stdout.write(key)
