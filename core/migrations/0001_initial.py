# AuditEvent, moved here from governance with its rows: governance/0005 renamed its table to
# core_auditevent, so this only records the model in core's state (the index names are still
# the ones governance created; 0002 renames them). The content type keeps its id, so events
# that point at it and the permissions attached to it stay valid.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def relabel_content_type(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    if not ContentType.objects.filter(app_label='core', model='auditevent').exists():
        ContentType.objects.filter(app_label='governance', model='auditevent').update(
            app_label='core'
        )


def unlabel_content_type(apps, schema_editor):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    if not ContentType.objects.filter(app_label='governance', model='auditevent').exists():
        ContentType.objects.filter(app_label='core', model='auditevent').update(
            app_label='governance'
        )


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('governance', '0005_auditevent_moves_to_core'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='AuditEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField()),
                        ('actor_repr', models.CharField(max_length=150)),
                        ('verb', models.CharField(db_index=True, max_length=80)),
                        ('target_id', models.CharField(max_length=64)),
                        ('target_repr', models.CharField(max_length=200)),
                        ('before', models.JSONField(blank=True, null=True)),
                        ('after', models.JSONField(blank=True, null=True)),
                        ('correlation_id', models.CharField(blank=True, max_length=64)),
                        ('seq', models.PositiveBigIntegerField(blank=True, null=True, unique=True)),
                        ('prev_hash', models.CharField(max_length=64, null=True)),
                        ('hash', models.CharField(max_length=64, null=True, unique=True)),
                        ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('target_type', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='contenttypes.contenttype')),
                    ],
                    options={
                        'ordering': ['-id'],
                        'indexes': [
                            models.Index(fields=['target_type', 'target_id'], name='governance__target__e63ea8_idx'),
                            models.Index(fields=['created_at'], name='governance__created_a613fe_idx'),
                        ],
                    },
                ),
            ],
        ),
        migrations.RunPython(relabel_content_type, unlabel_content_type),
    ]
