from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from social.models import User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = DjangoUserAdmin.fieldsets + (
        ("Profile", {"fields": ("display_name", "bio", "birth_date", "tier")}),
    )
    list_display = ("username", "display_name", "tier", "is_staff", "date_joined")
