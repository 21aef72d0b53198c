import pytest
from django.contrib.auth.models import User


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
