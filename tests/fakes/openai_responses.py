"""A loopback fake of the OpenAI Responses API (POST /v1/responses), for the official `openai` client.

    with FakeOpenAI(mode="fenced", latency=0.01) as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-test")

Switches are described in tests.fakes.vlm_common. Requests must look like ours: a user message
with an input_image data URL and `text.format` a strict json_schema; anything else is a 400 with
OpenAI's error shape, so a regression in how we call the API fails loudly.
"""
import time
import uuid

from tests.fakes.vlm_common import FakeServer, decode_b64, serve_main, token_estimate


class FakeOpenAI(FakeServer):
    @property
    def base_url(self):
        return f"{self.root_url}/v1"

    def describe(self, payload):
        fmt = (payload.get("text") or {}).get("format") or {}
        return {"format_type": fmt.get("type"), "strict": fmt.get("strict"),
                "instructions": payload.get("instructions"), "store": payload.get("store")}

    def extract_image(self, payload):
        fmt = (payload.get("text") or {}).get("format") or {}
        if fmt.get("type") != "json_schema" or not fmt.get("strict") or "schema" not in fmt:
            raise ValueError("text.format must be a strict json_schema")
        for item in payload.get("input") or []:
            if not isinstance(item, dict):
                continue
            for part in item.get("content") or []:
                if isinstance(part, dict) and part.get("type") == "input_image":
                    url = part.get("image_url") or ""
                    prefix, _, data = url.partition(";base64,")
                    if not prefix.startswith("data:image/") or not data:
                        raise ValueError("input_image.image_url must be a base64 data URL")
                    return decode_b64(data)
        raise ValueError("no input_image in input")

    def success_body(self, payload, text):
        prompt_chars = len(payload.get("instructions") or "") + sum(
            len(p.get("text", "")) for item in payload.get("input") or [] if isinstance(item, dict)
            for p in item.get("content") or [] if isinstance(p, dict)
        )
        input_tokens = token_estimate("x" * prompt_chars) + 765  # text plus one image at detail auto
        output_tokens = token_estimate(text)
        return {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": payload.get("model"),
            "output": [{
                "id": f"msg_{uuid.uuid4().hex}",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
            }],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": bool(payload.get("store", True)),
            "temperature": 1.0,
            "text": payload.get("text"),
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": {},
        }

    def error_body(self, status, message):
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}.get(status, "server_error")
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def start_openai_fake(mode="valid", **kw):
    """Start a fake on a free loopback port; returns (fake, base_url). Call fake.stop() when done."""
    fake = FakeOpenAI(mode, **kw)
    fake.start()
    return fake, fake.base_url


if __name__ == "__main__":
    serve_main(FakeOpenAI)
