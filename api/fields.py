"""Strict serializer fields and the strict input serializer base.

DRF's stock fields are lenient ("5" and 5.0 are integers, 5 is a string); the
API is not: a JSON number must be a whole number, a string must be a string.
"""

from django.conf import settings
from django.core.validators import RegexValidator
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
    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
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
