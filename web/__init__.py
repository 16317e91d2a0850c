"""The front ends: the Flask app (``web.app``, one blueprint per feature) and the
``lookalike`` command line (``web.cli``).

Nothing is imported here: importing ``web.cli`` imports this package first, and a
command that serves nothing must not pay for Flask.
"""
