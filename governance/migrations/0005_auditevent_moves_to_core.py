# The audit trail moves to the core app with its rows: its table is renamed to core_auditevent
# and governance forgets the model; core/0001 takes the model over without touching the table.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('governance', '0004_audit_chain_sealed_after_commit'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='auditevent', table='core_auditevent'),
            ],
            state_operations=[
                migrations.DeleteModel(name='AuditEvent'),
            ],
        ),
    ]
