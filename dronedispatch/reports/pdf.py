"""HTML to PDF through WeasyPrint, with no network access.

Documents embed their images as ``data:`` URLs and their maps as inline SVG, so the fetcher allows
``data:`` alone: a document renders the same offline, and a stray link never reaches the network.
"""

from __future__ import annotations

import weasyprint
from weasyprint.urls import URLFetcher


def html_to_pdf(html: str) -> bytes:
    """Render a complete HTML document to PDF bytes (system fonts, e.g. Noto CJK for Korean text)."""
    fetcher = URLFetcher(allowed_protocols={"data"}, allow_redirects=False)
    pdf = weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf()
    assert pdf is not None  # write_pdf returns the bytes when given no target
    return pdf
