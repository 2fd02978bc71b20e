"""Strict serializer fields and the strict input serializer base.

DRF's stock fields are lenient ("5" and 5.0 are integers, 5 is a string); the
API is not: a JSON number must be a whole number, a string must be a string.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (not a bool, float or string)."""

    default_error_messages = {"invalid": "A whole number is required (not a string or float)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class QuantityField(StrictIntegerField):
    """A quantity: a whole number from 1 (or 0) to STOCKROOM_MAX_QUANTITY."""

    def __init__(self, *, allow_zero=False, **kwargs):
        kwargs.setdefault("min_value", 0 if allow_zero else 1)
        kwargs.setdefault("max_value", settings.STOCKROOM_MAX_QUANTITY)
        super().__init__(**kwargs)


class StrictCharField(serializers.CharField):
    """A JSON string. `max_length` bounds the string as sent (the schema's
    maxLength), before surrounding whitespace is trimmed: a 256-character name
    with a leading tab is refused, not stored as 255 characters."""

    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"invalid": "A number is required (not a string)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "true or false is required."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


SKU_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"
WAREHOUSE_REGEX = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
# An order id: no NUL, no "/" (its URL /reservations/{order_id}/ names it in one path
# segment; the reservation services refuse "/"), not blank (inputs are trimmed).
ORDER_ID_REGEX = r"^[^/\x00]*[^\s/\x00][^/\x00]*$"
ORDER_ID_MAX_LENGTH = 100


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": ORDER_ID_MAX_LENGTH,
        "pattern": ORDER_ID_REGEX,
        "description": "1 to 100 characters, no '/' and no NUL.",
    }
)
class OrderIdField(StrictCharField):
    """An order id in a body. The schema states the services' rules (the services
    check the "/", so its error answer stays theirs)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", ORDER_ID_MAX_LENGTH)
        super().__init__(**kwargs)


class SkuField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(SKU_REGEX, "Letters, digits and . _ / - only."))


class WarehouseCodeField(StrictCharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 32)
        super().__init__(**kwargs)
        self.validators.append(RegexValidator(WAREHOUSE_REGEX, "Letters, digits, - and _ only."))


# Refuses fields it does not know (a typo must not be silently ignored). A comment,
# not a docstring: drf-spectacular would copy a docstring into every input schema.
class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)
