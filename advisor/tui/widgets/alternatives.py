"""The methods the plan did not pick, and why not; choosing a row asks for a plan with that method."""

from __future__ import annotations

from textual import on
from textual.message import Message
from textual.widgets import DataTable

from ...models import Alternative


class AlternativesTable(DataTable):
    """Rows keyed by method name; Enter (or a click) on a row posts `Picked`."""

    class Picked(Message):
        def __init__(self, method: str) -> None:
            super().__init__()
            self.method = method

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        self.add_columns("method", "approach", "fits", "peak GiB", "why not")

    def show(self, alternatives: list[Alternative]) -> None:
        self.clear()
        for alternative in alternatives:
            fits = "yes" if alternative.fits else "no" if alternative.fits is False else "-"
            peak = f"{alternative.peak_gib:.1f}" if alternative.peak_gib is not None else "-"
            name = alternative.method or alternative.approach
            self.add_row(name, alternative.approach.replace("_", " "), fits, peak, alternative.why_not, key=name)

    @on(DataTable.RowSelected)
    def pick(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.post_message(self.Picked(str(event.row_key.value)))
