"""Talking to the model: the OpenAI client, token counts, prices, and checks of
an answer against its JSON Schema."""
