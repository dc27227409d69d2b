from tortoise import migrations
from tortoise.migrations import operations as ops
from ordercast.models.deliveries import delivery_id
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('seq', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('id', fields.CharField(default=delivery_id, unique=True, max_length=40)),
                ('event_id', fields.CharField(max_length=40)),
                ('order_id', fields.CharField(null=True, db_index=True, max_length=40)),
                ('channel', fields.CharField(max_length=20)),
                ('recipient', fields.CharField(max_length=255)),
                ('locale', fields.CharField(default='en', max_length=35)),
                ('status', fields.CharField(default='pending', max_length=10)),
                ('attempts', fields.IntField(default=0)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('lease_token', fields.CharField(null=True, max_length=32)),
                ('sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'deliveries', 'app': 'models', 'unique_together': (('event_id', 'channel', 'recipient'),), 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['channel', 'recipient', 'status', 'seq'])], 'pk_attr': 'seq'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TelegramChat',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('chat_id', fields.BigIntField(unique=True)),
                ('customer', fields.OneToOneField('models.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='telegram_chat', on_delete=OnDelete.SET_NULL)),
                ('stopped', fields.BooleanField(default=False)),
                ('inactive', fields.BooleanField(default=False)),
                ('inactive_reason', fields.CharField(null=True, max_length=255)),
                ('language', fields.CharField(null=True, max_length=35)),
                ('review_order_id', fields.CharField(null=True, max_length=40)),
                ('review_stars', fields.SmallIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'telegram_chats', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A private chat with the bot, linked to at most one customer (and a customer to at most one chat).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TelegramLink',
            fields=[
                ('token_hash', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='telegram_links', on_delete=OnDelete.CASCADE)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'telegram_links', 'app': 'models', 'pk_attr': 'token_hash', 'table_description': 'A `/start <token>` link, single-use and short-lived: only the SHA-256 of the token is stored.'},
            bases=['Model'],
        ),
    ]
