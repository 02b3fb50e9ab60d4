"""Drives pdserve's OpenAI-compatible HTTP API with the `openai` Python package (the SDK people
use), streaming and not, completions and chat. Usage: openai_sdk_check.py BASE_URL MODEL.

Checks what the SDK can see: exact usage counts, finish reasons, streamed text equal to the
whole response's text for the same seed, the usage chunk of a stream, pdserve's extension
(token ids) through extra_body, and an unknown model raising the SDK's NotFoundError."""
import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


# Completions, not streamed: the SDK's typed response.
whole = client.completions.create(model=model, prompt="hello pdserve world", max_tokens=12,
                                  seed=5, extra_body={"ignore_eos": True, "return_token_ids": True})
check(whole.object == "text_completion", "completion object")
check(whole.usage.prompt_tokens == 3, f"prompt_tokens 3 (got {whole.usage.prompt_tokens})")
check(whole.usage.completion_tokens == 12, f"completion_tokens 12 (got {whole.usage.completion_tokens})")
check(whole.choices[0].finish_reason == "length", "finish_reason length")
words = whole.choices[0].text.split()
check(len(words) == 12, f"12 tokens of text (got {len(words)})")
ids = (whole.model_extra or {}).get("pdserve", {}).get("token_ids")
check(ids == [int(w) for w in words], "pdserve.token_ids are the text's tokens")

# Completions, streamed with usage: the same seed gives the same text.
text, usage, finish = "", None, None
stream = client.completions.create(model=model, prompt="hello pdserve world", max_tokens=12, seed=5,
                                   stream=True, stream_options={"include_usage": True},
                                   extra_body={"ignore_eos": True})
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].text or ""
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage:
        usage = chunk.usage
check(text == whole.choices[0].text, "streamed text equals the whole response's")
check(finish == "length", "streamed finish_reason length")
check(usage is not None and usage.completion_tokens == 12, "usage chunk counts 12 tokens")

# Chat, both ways.
messages = [{"role": "user", "content": "say something"}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=6, seed=9)
check(chat.choices[0].message.role == "assistant", "chat message role")
check(chat.usage.completion_tokens == 6, "chat completion_tokens 6")
streamed = ""
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=6,
                                            seed=9, stream=True):
    if chunk.choices and chunk.choices[0].delta.content:
        streamed += chunk.choices[0].delta.content
check(streamed == chat.choices[0].message.content, "streamed chat equals the whole chat")

# Models and errors as the SDK types them.
check([m.id for m in client.models.list().data] == [model], "models.list")
try:
    client.completions.create(model="no-such-model", prompt="x", max_tokens=2)
    check(False, "unknown model raises NotFoundError")
except openai.NotFoundError:
    check(True, "unknown model raises NotFoundError")
try:
    client.completions.create(model=model, prompt="x", max_tokens=0)
    check(False, "max_tokens 0 raises BadRequestError")
except openai.BadRequestError:
    check(True, "max_tokens 0 raises BadRequestError")

print(f"openai {openai.__version__}: {len(failures)} failures")
sys.exit(1 if failures else 0)
