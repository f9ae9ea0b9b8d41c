"""Capture rigs: a local JetStream server that accepts everything at once, an agent that
forwards it to a site in order and exactly once, resumable dataset uploads, and the
operator's status (panel and terminal). See docs/rig.md.
"""
