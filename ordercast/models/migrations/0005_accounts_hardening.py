from tortoise import migrations
from tortoise.migrations import operations as ops
from ordercast.models.sessions import session_id
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_payments')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AdminSession',
            fields=[
                ('id', fields.CharField(primary_key=True, default=session_id, unique=True, db_index=True, max_length=40)),
                ('user', fields.ForeignKeyField('models.AdminUser', source_field='user_id', db_constraint=True, to_field='id', related_name='sessions', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('user_agent', fields.CharField(default='', max_length=512)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sessions', 'app': 'models', 'indexes': [Index(fields=['user_id', 'ended_at'])], 'pk_attr': 'id', 'table_description': 'One signed-in browser of an admin, from login until logout, revocation or its maximum age.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='AdminUser',
            name='disabled_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='last_used_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='prefix',
            field=fields.CharField(default='', db_default='', max_length=16),
        ),
        ops.RemoveIndex(
            model_name='LoginFailure',
            name=None,
            fields=['email', 'at'],
        ),
        ops.AlterModelOptions(
            name='LoginFailure',
            options={'table': 'login_failures', 'app': 'models', 'indexes': [Index(fields=['email', 'ip', 'at']), Index(fields=['ip', 'at'])], 'pk_attr': 'id', 'table_description': 'A login attempt: written before it is judged (so parallel guesses all count), kept if it failed.'},
        ),
        ops.AddField(
            model_name='LoginFailure',
            name='ip',
            field=fields.CharField(default='', db_default='', max_length=64),
        ),
        ops.AddIndex(
            model_name='LoginFailure',
            index=Index(fields=['email', 'ip', 'at']),
        ),
        ops.AddIndex(
            model_name='LoginFailure',
            index=Index(fields=['ip', 'at']),
        ),
    ]
