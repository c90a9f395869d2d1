"""The HTTP layer: routes map to the request chain (serving/pipeline/chain.py), errors map
to OpenAI-shaped responses, and the Ray Serve deployment only wires handles and config."""
