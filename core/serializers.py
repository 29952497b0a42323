from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not know, instead of silently dropping them, and a
    number or boolean where text is expected (DRF's CharField would turn `5` into `"5"`)."""

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            known = set(self.fields)
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
            not_text = {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and name in data
                and isinstance(data[name], int | float | bool)
            }
            if not_text:
                # Reported together with whatever else is wrong with the body.
                try:
                    super().to_internal_value(data)
                except serializers.ValidationError as exc:
                    others = exc.detail if isinstance(exc.detail, dict) else {}
                    raise serializers.ValidationError({**others, **not_text}) from exc
                raise serializers.ValidationError(not_text)
        return super().to_internal_value(data)


class StrictModelSerializer(StrictSerializer, serializers.ModelSerializer):
    pass


@extend_schema_field(OpenApiTypes.STR)
class IdField(serializers.Field):
    """Ids are strings in the API, whatever the column type."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return None if value is None else str(value)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
