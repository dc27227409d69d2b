from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_push_notifications_alerts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('payment_id', fields.CharField(max_length=255)),
                ('kind', fields.CharField(max_length=20)),
                ('order_id', fields.CharField(db_index=True, max_length=40)),
                ('amount', fields.DecimalField(max_digits=20, decimal_places=4)),
                ('currency', fields.CharField(max_length=3)),
                ('outcome', fields.CharField(max_length=20)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payments', 'app': 'models', 'unique_together': (('payment_id', 'kind'),), 'pk_attr': 'id', 'table_description': 'One provider notice that moved (or was recorded against) an order, once per id and kind.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookReceipt',
            fields=[
                ('webhook_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=300)),
                ('received_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'webhook_receipts', 'app': 'models', 'pk_attr': 'webhook_id', 'table_description': 'A webhook id answered 2xx, remembered so that a retry of it has no second effect.'},
            bases=['Model'],
        ),
    ]
