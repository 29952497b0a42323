from django.db import migrations, models


class Migration(migrations.Migration):
    """Likes carry their post's author and chain root (see Like), filled in for existing likes."""

    dependencies = [
        ("social", "0003_alter_notification_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="like",
            name="post_author_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="like",
            name="post_root_id",
            field=models.BigIntegerField(null=True),
        ),
        migrations.RunSQL(
            sql="""
                UPDATE social_like l
                SET post_author_id = p.author_id, post_root_id = COALESCE(p.root_id, p.id)
                FROM social_post p
                WHERE p.id = l.post_id
            """,
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="like",
            name="post_author_id",
            field=models.BigIntegerField(),
        ),
        migrations.AlterField(
            model_name="like",
            name="post_root_id",
            field=models.BigIntegerField(),
        ),
        migrations.RemoveIndex(
            model_name="like",
            name="like_user_recent_idx",
        ),
        migrations.AddIndex(
            model_name="like",
            index=models.Index(
                fields=["user", "-created_at"],
                include=("post_author_id", "post_root_id"),
                name="like_user_recent_cover_idx",
            ),
        ),
    ]
