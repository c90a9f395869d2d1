"""The request path as a chain of stages (chain.py reads it top to bottom). Each stage is a
plain object: no HTTP, no Ray; tests drive the chain with fake tier handles."""
