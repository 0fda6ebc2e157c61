"""Integrations: ckptstore behind other frameworks' persistence interfaces.

Each module here is optional: it imports its framework, which the core package never
does (``tests/test_layering.py`` checks it). ``ckptstore.integrations.langgraph`` is a
LangGraph checkpointer (``pip install 'ckptstore[langgraph]'``).
"""
