# The carrier auth token moves to an encrypted column (accounts.secrets, Fernet). Existing plain tokens
# are encrypted with RINGPOOL_ENCRYPTION_KEYS, so that variable must be set before this migration runs
# on a database that holds tokens.

from django.db import migrations, models


def encrypt_existing_tokens(apps, schema_editor):
    from accounts import secrets

    Account = apps.get_model("accounts", "Account")
    for account in Account.objects.exclude(carrier_auth_token="").only("id", "carrier_auth_token"):
        Account.objects.filter(pk=account.pk).update(
            carrier_auth_token_encrypted=secrets.encrypt(account.carrier_auth_token)
        )


def decrypt_tokens(apps, schema_editor):
    from accounts import secrets

    Account = apps.get_model("accounts", "Account")
    for account in Account.objects.exclude(carrier_auth_token_encrypted="").only(
        "id", "carrier_auth_token_encrypted"
    ):
        Account.objects.filter(pk=account.pk).update(
            carrier_auth_token=secrets.decrypt(account.carrier_auth_token_encrypted)
        )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='account',
            options={'ordering': ['name'], 'permissions': [('change_carrier_credentials', 'Can replace the carrier credentials')]},
        ),
        migrations.AddField(
            model_name='account',
            name='carrier_auth_token_changed_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='account',
            name='carrier_auth_token_encrypted',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name='account',
            name='carrier_auth_token_next_encrypted',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name='account',
            name='carrier_auth_token_previous_encrypted',
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.RunPython(encrypt_existing_tokens, decrypt_tokens),
        migrations.RemoveField(
            model_name='account',
            name='carrier_auth_token',
        ),
    ]
