"""How figures and widgets reach a page: every interactive output (a plotly figure, an ipywidget)
is displayed together with a static PNG of its starting state, so it reads in JupyterLab (the
interactive view), in the offline book (plotly's div, the saved widget state) and in any viewer
without JavaScript or a kernel (GitHub, an e-mailed notebook: the PNG).

Plotly executed headless emits only its JSON mimetype, which nbconvert's HTML drops; the bundle
here adds the figure's ``<div>`` (without plotly.js: the book embeds it once per page) with the
PNG inside it, which the figure's script replaces when plotly.js runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
WIDGET_MIMETYPE = "application/vnd.jupyter.widget-view+json"
PNG_MIMETYPE = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def png_bytes(static: Any) -> bytes:
    """PNG bytes from a matplotlib figure or from PNG bytes; a clear error for anything else."""
    if isinstance(static, bytes | bytearray | memoryview):
        if not bytes(static).startswith(PNG_SIGNATURE):
            raise ValueError("static: bytes given are not a PNG image")
        return bytes(static)
    if hasattr(static, "savefig"):
        return figure_png(static)
    raise TypeError(f"static must be a matplotlib figure or PNG bytes, got {type(static).__name__}")


def plotly_div(spec: Mapping[str, Any], png: str | bytes | None = None) -> str:
    """The ``<div>`` and ``<script>`` that draw a plotly figure (a figure's JSON dict), for a page
    that already loaded plotly.js. A figure with frames opens at its layout's state (its slider's
    ``active`` step) instead of playing every frame on load, plotly's default. With ``png``
    (bytes or base64 text), the static image sits in front and the script hides it once plotly
    has drawn, so a page whose scripts do not run still shows the figure."""
    import plotly.io as pio

    text = json.dumps(spec, sort_keys=True, default=str)
    div_id = "plotly-" + hashlib.sha1(text.encode()).hexdigest()[:12]
    html = pio.to_html(
        dict(spec),
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        validate=False,
        auto_play=False,
    )
    if png is None:
        return html
    encoded = png if isinstance(png, str) else base64.b64encode(png).decode("ascii")
    return (
        f'<img id="{div_id}-static" class="dihkit-static-twin" alt="static view of the figure" '
        f'src="data:image/png;base64,{encoded}"/>\n{html}\n'
        f"<script>if (window.Plotly) {{ var s = document.getElementById('{div_id}-static'); "
        "if (s) { s.style.display = 'none'; } }</script>"
    )


def plotly_bundle(fig: Any, static: Any) -> dict[str, Any]:
    """A display bundle for a plotly figure and its static twin (a matplotlib figure of the same
    starting state, or PNG bytes): the plotly JSON (JupyterLab renders it), ``text/html`` (the
    book; the PNG inside it), ``image/png`` and ``text/plain``. The div id is derived from the
    figure, so re-running a notebook gives the same output."""
    import plotly.io as pio

    spec = json.loads(pio.to_json(fig, validate=False))
    encoded = base64.b64encode(png_bytes(static)).decode("ascii")
    title = ((spec.get("layout") or {}).get("title") or {}).get("text") or "plotly figure"
    return {
        PLOTLY_MIMETYPE: spec,
        "text/html": plotly_div(spec, encoded),
        PNG_MIMETYPE: encoded,
        "text/plain": f"<{title}>",
    }


def widget_bundle(widget: Any, static: Any) -> dict[str, Any]:
    """A display bundle for an ipywidget and a PNG of its starting state: the widget view
    (JupyterLab and the book's saved widget state render it) plus ``image/png`` for viewers that
    cannot."""
    bundle = dict(widget._repr_mimebundle_())
    if WIDGET_MIMETYPE not in bundle:
        raise TypeError(f"{type(widget).__name__} does not display as a widget")
    bundle[PNG_MIMETYPE] = base64.b64encode(png_bytes(static)).decode("ascii")
    return bundle


def show_plotly(fig: Any, static: Any) -> None:
    """Display a plotly figure with its static twin (see :func:`plotly_bundle`)."""
    from IPython.display import display

    display(plotly_bundle(fig, static), raw=True)


def show_widget(widget: Any, static: Any | None = None) -> None:
    """Display a widget with a PNG of its current state: ``static``, or what the widget's own
    ``snapshot()`` returns (the kit's explorers have one)."""
    from IPython.display import display

    if static is None:
        if not callable(getattr(widget, "snapshot", None)):
            raise ValueError(f"{type(widget).__name__} has no snapshot(): pass static=FIGURE")
        static = widget.snapshot()
    display(widget_bundle(widget, static), raw=True)
