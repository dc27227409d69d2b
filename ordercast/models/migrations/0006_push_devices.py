from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_accounts_hardening')]

    initial = False

    operations = [
        ops.AddField(
            model_name='PushSubscription',
            name='last_error',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='PushSubscription',
            name='last_success_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PushSubscription',
            name='last_used_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='PushSubscription',
            name='name',
            field=fields.CharField(null=True, max_length=100),
        ),
        # The least recently used subscription is the one replaced: until used again, that is when it was made.
        ops.RunSQL(
            "UPDATE push_subscriptions SET last_used_at = created_at WHERE last_used_at IS NULL",
            reverse_sql="",
        ),
    ]
