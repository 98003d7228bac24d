"""CPU of one streamed Chat Completions call: the SDK's own `Stream` (a model
per chunk, the connection closed at `[DONE]`) beside `workflows.llm.client.stream`
(the raw response read to its end), interleaved, against the fake server.

    python -m bench._stream [calls]
"""

import os
import subprocess
import sys
import time

from bench.harness import free_port, summary, wait_http

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ["OPENAI_API_KEY"] = "bench"
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
port = free_port()
fake = subprocess.Popen(
    [sys.executable, "-m", "dev.fake_openai", "--port", str(port)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
try:
    os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    wait_http(f"http://127.0.0.1:{port}/healthz")
    import django

    django.setup()
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    from workflows.llm import client

    messages = [{"role": "user", "content": "Step 1 of a topic"}]
    sdk = openai.OpenAI(api_key="bench", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)

    def with_sdk_stream() -> None:
        body = {
            "model": "gpt-4.1-mini",
            "messages": messages,
            "temperature": 0.7,
            "max_completion_tokens": 1024,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        with sdk.post(
            "/chat/completions",
            body=body,
            cast_to=ChatCompletion,
            stream=True,
            stream_cls=openai.Stream[ChatCompletionChunk],
            options={"timeout": 60, "security": {"bearer_auth": True}},
        ) as chunks:
            for chunk in chunks:
                for choice in chunk.choices[:1]:
                    _ = choice.delta.content

    def with_client_stream() -> None:
        for _ in client.stream(
            model="gpt-4.1-mini",
            messages=messages,
            temperature=0.7,
            max_tokens=1024,
            response_schema=None,
            timeout=60,
        ):
            pass

    cpu: dict[str, list[float]] = {"sdk Stream": [], "client.stream": []}
    wall: dict[str, list[float]] = {"sdk Stream": [], "client.stream": []}
    for f in (with_sdk_stream, with_client_stream):
        for _ in range(20):
            f()  # warm up
    for _ in range(N):
        for name, f in (("sdk Stream", with_sdk_stream), ("client.stream", with_client_stream)):
            c, w = time.thread_time(), time.perf_counter()
            f()
            cpu[name].append((time.thread_time() - c) * 1000)
            wall[name].append((time.perf_counter() - w) * 1000)
    for name in cpu:
        print(f"{name}: cpu ms {summary(cpu[name])} wall ms {summary(wall[name])}")
finally:
    fake.terminate()
    fake.wait()
