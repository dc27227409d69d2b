from tortoise import migrations
from tortoise.migrations import operations as ops
from ordercast.models.tables import api_key_id, customer_id, dump_json, event_id, order_id, review_id, user_id
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AdminUser',
            fields=[
                ('id', fields.CharField(primary_key=True, default=user_id, unique=True, db_index=True, max_length=40)),
                ('email', fields.CharField(unique=True, max_length=320)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'admin_users', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ApiKey',
            fields=[
                ('id', fields.CharField(primary_key=True, default=api_key_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.AdminUser', source_field='user_id', db_constraint=True, to_field='id', related_name='api_keys', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(default='', max_length=255)),
                ('key_hash', fields.CharField(unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'api_keys', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Customer',
            fields=[
                ('id', fields.CharField(primary_key=True, default=customer_id, unique=True, db_index=True, max_length=40)),
                ('external_id', fields.CharField(unique=True, max_length=255)),
                ('name', fields.CharField(max_length=255)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('locale', fields.CharField(default='en', max_length=35)),
                ('telegram_chat_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'customers', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EventRecord',
            fields=[
                ('id', fields.CharField(primary_key=True, default=event_id, unique=True, db_index=True, max_length=40)),
                ('type', fields.CharField(max_length=40)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('order_id', fields.CharField(null=True, db_index=True, max_length=40)),
                ('order_version', fields.IntField(null=True)),
                ('customer_id', fields.CharField(null=True, max_length=40)),
                ('data', fields.JSONField(encoder=dump_json, decoder=loads)),
                ('published', fields.BooleanField(default=False, db_index=True)),
            ],
            options={'table': 'events', 'app': 'models', 'unique_together': (('order_id', 'order_version'),), 'pk_attr': 'id', 'table_description': 'The outbox: every event, written in the transaction of the change that caused it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.CharField(max_length=40)),
                ('key', fields.CharField(max_length=255)),
                ('request_hash', fields.CharField(max_length=64)),
                ('locked_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('response_status', fields.SmallIntField(null=True)),
                ('response_body', fields.JSONField(null=True, encoder=dump_json, decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_keys', 'app': 'models', 'unique_together': (('user_id', 'key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LoginFailure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('email', fields.CharField(max_length=320)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'login_failures', 'app': 'models', 'indexes': [Index(fields=['email', 'at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.CharField(primary_key=True, default=order_id, unique=True, db_index=True, max_length=40)),
                ('number', fields.CharField(unique=True, max_length=8)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='orders', on_delete=OnDelete.RESTRICT)),
                ('status', fields.CharField(default='pending_payment', db_index=True, max_length=20)),
                ('currency', fields.CharField(max_length=3)),
                ('total', fields.DecimalField(max_digits=20, decimal_places=4)),
                ('items', fields.JSONField(encoder=dump_json, decoder=loads)),
                ('external_id', fields.CharField(null=True, max_length=255)),
                ('tracking_number', fields.CharField(null=True, max_length=255)),
                ('note', fields.TextField(null=True, unique=False)),
                ('version', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'orders', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Review',
            fields=[
                ('id', fields.CharField(primary_key=True, default=review_id, unique=True, db_index=True, max_length=40)),
                ('order', fields.OneToOneField('models.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='review', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.CharField(max_length=40)),
                ('stars', fields.SmallIntField()),
                ('comment', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'reviews', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StoredSecret',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('value', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'secrets', 'app': 'models', 'pk_attr': 'name', 'table_description': 'Generated secrets (session key, VAPID key, …), created once so every process agrees.'},
            bases=['Model'],
        ),
    ]
