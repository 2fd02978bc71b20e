"""The explicit "all warehouses" permission, and the upgrade that keeps access as it was.

Before this migration a staff user with no `StaffWarehouse` row acted in every
warehouse; from now on such a user acts in none unless they hold
`backoffice.act_in_all_warehouses` (`backoffice.access`). So that nothing
changes on upgrade, every non-superuser *staff* user who has no assignment at
this moment is granted the permission directly (Users → (the user) → User
permissions). Review those users after the upgrade and, for anyone who should
be limited, assign their warehouses and remove the permission. Users who are not
staff get nothing: they cannot use the back office, and if made staff later they
start with no warehouse.

Reversing leaves the grants in place (the old code ignores them).
"""

from django.conf import settings
from django.db import migrations

PERMISSIONS = [
    ("cycle_count", "Can perform cycle counts (stock adjustments)"),
    ("transfer_stock", "Can transfer stock between warehouses"),
    ("receive_stock", "Can receive stock directly"),
    ("act_in_all_warehouses", "Can act in all warehouses (whatever Works at says)"),
]


def grant_to_unassigned_staff(apps, schema_editor):
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    StaffWarehouse = apps.get_model("backoffice", "StaffWarehouse")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    # post_migrate creates permissions only after the whole run: create it now.
    content_type, _ = ContentType.objects.using(db).get_or_create(
        app_label="backoffice", model="staffaction"
    )
    permission, _ = Permission.objects.using(db).get_or_create(
        content_type=content_type,
        codename="act_in_all_warehouses",
        defaults={"name": dict(PERMISSIONS)["act_in_all_warehouses"]},
    )
    assigned = StaffWarehouse.objects.using(db).values("user_id")
    unassigned = (
        User.objects.using(db)
        .filter(is_staff=True, is_superuser=False)
        .exclude(pk__in=assigned)
        .values_list("pk", flat=True)
    )
    Through = User.user_permissions.through
    Through.objects.using(db).bulk_create(
        [Through(user_id=pk, permission_id=permission.pk) for pk in unassigned],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0002_staff_warehouse"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="staffaction",
            options={
                "default_permissions": (),
                "managed": False,
                "permissions": PERMISSIONS,
                "verbose_name": "back-office action",
            },
        ),
        migrations.RunPython(grant_to_unassigned_staff, migrations.RunPython.noop),
    ]
