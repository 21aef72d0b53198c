"""Fixtures for the VLM judge: stored images, synced prompts, and the two fakes wired into settings."""
import pytest

from tests.factories import stored_image
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai_responses import FakeOpenAI
from vlm.prompts import sync_prompts

OPENAI_KEY = "sk-test-SECRET-7f3a9c21d4"
OLLAMA_KEY = "ollama-SECRET-55e1b0c9aa"


@pytest.fixture
def make_images(db):
    """n stored 160x120 images (seeds start, start + 1, ...); the same seed twice is the same image."""
    def make(n, start=0, width=160, height=120):
        return [stored_image(start + i, width=width, height=height) for i in range(n)]
    return make


@pytest.fixture
def prompts(db, settings):
    settings.SCENEIMG_VLM_PROMPT = ""
    created, unchanged = sync_prompts()
    return {v.name: v for v in created + unchanged}


@pytest.fixture
def fast_retries(settings):
    """Small waits so retry paths run in milliseconds; the seeded jitter is still exercised."""
    settings.SCENEIMG_VLM_RETRIES = 2
    settings.SCENEIMG_VLM_BACKOFF = 0.001
    settings.SCENEIMG_VLM_BACKOFF_MAX = 0.005
    settings.SCENEIMG_VLM_RETRY_AFTER_MAX = 0.01
    settings.SCENEIMG_VLM_TIMEOUT = 2.0


@pytest.fixture
def openai_fake(settings, fast_retries):
    fake = FakeOpenAI("valid", api_key=OPENAI_KEY, slow_seconds=1.0)
    fake.start()
    settings.SCENEIMG_OPENAI_BASE_URL = fake.base_url
    settings.SCENEIMG_OPENAI_API_KEY = OPENAI_KEY
    yield fake
    fake.stop()


@pytest.fixture
def ollama_fake(settings, fast_retries):
    fake = FakeOllama("valid", slow_seconds=1.0)
    fake.start()
    settings.SCENEIMG_OLLAMA_HOST = fake.base_url
    yield fake
    fake.stop()


@pytest.fixture
def ollama_cloud_fake(settings, fast_retries):
    fake = FakeOllama("valid", api_key=OLLAMA_KEY, slow_seconds=1.0)
    fake.start()
    settings.SCENEIMG_OLLAMA_CLOUD_HOST = fake.base_url
    settings.SCENEIMG_OLLAMA_API_KEY = OLLAMA_KEY
    yield fake
    fake.stop()
