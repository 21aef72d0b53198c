import pytest
from django.contrib.auth.models import User


@pytest.fixture
def user():
    return User.objects.create_user("rita", password="pw-rita-123")


@pytest.fixture
def client_in(client, user):
    client.force_login(user)
    return client
