"""The served knowledge base: entries, files, versions, retrieval, answer modes, fact guard.

Pure Python and numpy (plus bm25s and the bundled embedder): no engine import, so the
ingress can hold it beside the router and a CLI can search it without a running stack.
"""
