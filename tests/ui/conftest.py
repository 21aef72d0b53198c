import pytest
from django.contrib.auth.models import Permission, User


@pytest.fixture
def user():
    return User.objects.create_user("rita", password="pw-rita-123")


@pytest.fixture
def client_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def reviewer(client):
    """A signed-in user who is not staff."""
    user = User.objects.create_user("rev", password="pw-12345678")
    client.force_login(user)
    return user


@pytest.fixture
def staff(client):
    """Staff with the permission the admin asks for before launching (curation.add_run)."""
    user = User.objects.create_user("boss", password="pw-12345678", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="curation", codename="add_run"))
    client.force_login(user)
    return user
