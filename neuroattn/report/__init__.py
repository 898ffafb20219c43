"""Self-contained HTML reports: one page per subject and one group page.

Figures are embedded as base64 PNG, every name and path is HTML-escaped (Jinja2 autoescape), and
sections whose inputs are absent say so instead of failing.
"""
from .html import render_page, fig_to_uri

__all__ = ["render_page", "fig_to_uri"]
