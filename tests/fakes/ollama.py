"""A loopback fake of Ollama's /api/chat (local and cloud), for the official `ollama` client.

    with FakeOllama(mode="prose", api_key="cloud-key") as fake:   # api_key: behave as ollama.com
        client = ollama.Client(host=fake.base_url, headers={"Authorization": "Bearer cloud-key"})

Switches are described in tests.fakes.vlm_common. A request needs `format` (our JSON schema) and
the image in the last message's `images` as base64, as the real server expects.
"""
import time
from datetime import datetime, timezone

from tests.fakes.vlm_common import FakeServer, decode_b64, serve_main, token_estimate


class FakeOllama(FakeServer):
    def describe(self, payload):
        return {"format": payload.get("format"), "stream": payload.get("stream"),
                "options": payload.get("options")}

    def extract_image(self, payload):
        if not payload.get("format"):
            raise ValueError("format (a JSON schema) is required by this fake")
        messages = payload.get("messages") or []
        images = (messages[-1].get("images") if messages and isinstance(messages[-1], dict) else None) or []
        if not images:
            raise ValueError("the last message carries no images")
        return decode_b64(images[0])

    def success_body(self, payload, text):
        prompt = " ".join(m.get("content", "") for m in payload.get("messages") or [] if isinstance(m, dict))
        return {
            "model": payload.get("model"),
            "created_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "message": {"role": "assistant", "content": text},
            "done_reason": "stop",
            "done": True,
            "total_duration": int(self.latency * 1e9) + 1_000_000,
            "load_duration": 500_000,
            "prompt_eval_count": token_estimate(prompt) + 576,
            "prompt_eval_duration": 300_000,
            "eval_count": token_estimate(text),
            "eval_duration": 200_000,
        }

    def error_body(self, status, message):
        return {"error": message}

    def _handle_get(self, h):
        if h.path == "/api/version":
            return self._send(h, 200, {"version": "0.12.6"})
        if h.path == "/api/tags":
            return self._send(h, 200, {"models": [{"name": "llava:latest", "model": "llava:latest",
                                                   "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}]})
        return self._send(h, 404, {"error": "not found"})


def start_ollama_fake(mode="valid", **kw):
    """Start a fake on a free loopback port; returns (fake, base_url). Call fake.stop() when done."""
    fake = FakeOllama(mode, **kw)
    fake.start()
    return fake, fake.base_url


if __name__ == "__main__":
    serve_main(FakeOllama)
