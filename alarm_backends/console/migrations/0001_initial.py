from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("at", models.DateTimeField(auto_now_add=True, db_index=True)),
                ("username", models.CharField(max_length=150)),
                (
                    "action",
                    models.CharField(choices=[("pause", "pause"), ("resume", "resume"), ("run", "run")], max_length=16),
                ),
                ("entry", models.CharField(max_length=512)),
                ("outcome", models.CharField(max_length=512)),
            ],
            options={
                "ordering": ("-at", "-id"),
                "permissions": (("operate_schedule", "Can pause, resume and run schedule entries in the console"),),
            },
        ),
    ]
