"""factory-boy factories for the stock models."""

import factory

from inventory.models import Product, StockPolicy
from warehouses.models import Warehouse


class WarehouseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Warehouse
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"WH-{n}")
    name = factory.LazyAttribute(lambda o: f"Warehouse {o.code}")
    address = factory.Faker("address")
    latitude = factory.Faker("pydecimal", left_digits=2, right_digits=6, min_value=40, max_value=55)
    longitude = factory.Faker(
        "pydecimal", left_digits=2, right_digits=6, min_value=-5, max_value=20
    )
    capacity = 100_000
    is_active = True


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("sku",)

    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    name = factory.Faker("catch_phrase")
    category = "general"
    weight_g = 500
    stock_policy = StockPolicy.NORMAL
    backorder_limit = 0


class BackorderProductFactory(ProductFactory):
    stock_policy = StockPolicy.BACKORDER
    backorder_limit = 5


# --- Staff users (back office, tests/admin/) --------------------------------


class StaffUserFactory(factory.django.DjangoModelFactory):
    """An active staff user; pass `groups=[...]` (role names) to give it roles."""

    class Meta:
        model = "auth.User"
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("staff-password")

    @factory.post_generation
    def groups(self, create, names, **kwargs):
        from django.contrib.auth.models import Group

        if create and names:
            self.groups.add(*Group.objects.filter(name__in=names))


# --- Bundles (issue #16; hD2's reservation tests) ----------------------------


def BundleFactory(sku: str, components: dict[str, int], **fields):
    """A bundle product with `components` ({component SKU: quantity per bundle});
    component products are created if missing (normal stock policy)."""
    from inventory.models import BundleComponent

    bundle = ProductFactory(sku=sku, is_bundle=True, **fields)
    for component_sku, quantity in components.items():
        BundleComponent.objects.create(
            bundle=bundle, component=ProductFactory(sku=component_sku), quantity=quantity
        )
    return bundle
