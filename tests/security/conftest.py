"""Users of each role for the security tests."""
import pytest
from django.contrib.auth.models import Permission, User


@pytest.fixture
def reviewer(db):
    """Signed in, not staff: may review, may not launch runs."""
    return User.objects.create_user("rev", password="pw-rev-12345678")


@pytest.fixture
def launcher(db):
    """Staff with curation.add_run: may launch runs from the admin, is not a superuser."""
    user = User.objects.create_user("boss", password="pw-boss-12345678", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="curation", codename="add_run"))
    return user


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", password="pw-root-12345678")


@pytest.fixture
def as_reviewer(client, reviewer):
    client.force_login(reviewer)
    return client
