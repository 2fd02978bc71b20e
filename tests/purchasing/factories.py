"""factory-boy factories for the purchasing models."""

import factory

from purchasing.models import Origin, ProductSupplier, PurchaseOrder, PurchaseOrderStatus, Supplier
from tests.factories import ProductFactory, WarehouseFactory


class SupplierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Supplier
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Supplier {n}")
    contact_name = factory.Faker("name")
    email = factory.Faker("email")
    lead_time_min_days = 3
    lead_time_max_days = 5
    is_active = True


class ProductSupplierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductSupplier

    product = factory.SubFactory(ProductFactory)
    supplier = factory.SubFactory(SupplierFactory)
    supplier_sku = factory.LazyAttribute(lambda o: f"S-{o.product.sku}")
    pack_size = 1
    is_preferred = True


class PurchaseOrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PurchaseOrder

    number = factory.Sequence(lambda n: f"PO-TEST-{n:05d}")
    supplier = factory.SubFactory(SupplierFactory)
    warehouse = factory.SubFactory(WarehouseFactory)
    status = PurchaseOrderStatus.ORDERED
    origin = Origin.MANUAL
    created_by = "user:buyer"
