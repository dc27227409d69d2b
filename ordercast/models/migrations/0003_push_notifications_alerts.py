from tortoise import migrations
from tortoise.migrations import operations as ops
from ordercast.models.notifications import alert_id, notification_id, subscription_id
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_deliveries_telegram')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Alert',
            fields=[
                ('id', fields.CharField(primary_key=True, default=alert_id, unique=True, db_index=True, max_length=40)),
                ('key', fields.CharField(db_index=True, max_length=255)),
                ('open_key', fields.CharField(null=True, unique=True, max_length=255)),
                ('severity', fields.CharField(max_length=10)),
                ('title', fields.CharField(max_length=255)),
                ('message', fields.TextField(unique=False)),
                ('occurrences', fields.IntField(default=1)),
                ('first_seen', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolution_note', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'alerts', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A problem the admins should look at: raising it again while open adds an occurrence.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.CharField(primary_key=True, default=notification_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.AdminUser', source_field='user_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('event_id', fields.CharField(max_length=40)),
                ('category', fields.CharField(max_length=10)),
                ('priority', fields.CharField(max_length=10)),
                ('title', fields.CharField(max_length=255)),
                ('body', fields.TextField(unique=False)),
                ('url', fields.CharField(null=True, max_length=1000)),
                ('order_id', fields.CharField(null=True, max_length=40)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notifications', 'app': 'models', 'unique_together': (('event_id', 'user_id'),), 'indexes': [Index(fields=['user_id', 'id']), Index(fields=['user_id', 'read_at'])], 'pk_attr': 'id', 'table_description': "One admin's copy of something that happened, until they delete it or it expires."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationPreference',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.AdminUser', source_field='user_id', db_constraint=True, to_field='id', related_name='preferences', on_delete=OnDelete.CASCADE)),
                ('category', fields.CharField(max_length=10)),
                ('push', fields.BooleanField(default=True)),
                ('in_app', fields.BooleanField(default=True)),
            ],
            options={'table': 'notification_preferences', 'app': 'models', 'unique_together': (('user_id', 'category'),), 'pk_attr': 'id', 'table_description': "An admin's choice for one category (no row: both channels on)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PushService',
            fields=[
                ('origin', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=255)),
                ('paused_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'push_services', 'app': 'models', 'pk_attr': 'origin', 'table_description': 'A push service that answered 429: no process pushes to it before `paused_until`.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PushSubscription',
            fields=[
                ('id', fields.CharField(primary_key=True, default=subscription_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.AdminUser', source_field='user_id', db_constraint=True, to_field='id', related_name='push_subscriptions', on_delete=OnDelete.CASCADE)),
                ('endpoint', fields.CharField(unique=True, max_length=1024)),
                ('origin', fields.CharField(db_index=True, max_length=255)),
                ('p256dh', fields.CharField(max_length=128)),
                ('auth', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'push_subscriptions', 'app': 'models', 'pk_attr': 'id', 'table_description': "A browser's PushSubscription for an admin: where to send, and the keys to encrypt for it."},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AdminUser',
            name='unread_notifications',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
