from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from core.serializers import IdField, StrictSerializer


class RegisterSerializer(StrictSerializer):
    username = serializers.CharField(min_length=3, max_length=30, validators=[UnicodeUsernameValidator()])
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True)
    birth_date = serializers.DateField()

    def validate_birth_date(self, value):
        from django.utils import timezone

        today = timezone.localdate()
        if value > today:
            raise serializers.ValidationError("The birth date is in the future.")
        if today.year - value.year > 130:
            raise serializers.ValidationError("The birth date is too far in the past.")
        return value


class RegisteredSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()


class TokenObtainRequestSerializer(StrictSerializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class TokenRefreshRequestSerializer(StrictSerializer):
    refresh = serializers.CharField()


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField()


class QuotaSerializer(serializers.Serializer):
    daily_limit = serializers.IntegerField()
    used_today = serializers.IntegerField()


class MeSerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
    display_name = serializers.CharField()
    bio = serializers.CharField()
    email = serializers.EmailField()
    is_minor = serializers.BooleanField()
    tier = serializers.CharField()
    quota = QuotaSerializer()


class MeUpdateSerializer(StrictSerializer):
    display_name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    bio = serializers.CharField(max_length=500, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)


class UserSummarySerializer(serializers.Serializer):
    id = IdField()
    username = serializers.CharField()
