"""Why the plan says what it says: each rule's message, its id and the source it cites."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...models import Rationale


class RationaleList(Widget):
    COMPONENT_CLASSES = {"rationale--bullet", "rationale--source"}

    entries: reactive[list[Rationale]] = reactive(list, layout=True)

    def render(self) -> Text:
        if not self.entries:
            return Text("no rule fired", style="italic")
        bullet = self.get_component_rich_style("rationale--bullet")
        source = self.get_component_rich_style("rationale--source")
        rows = []
        for entry in self.entries:
            rows.append(Text.assemble(("• ", bullet), entry.message, (f"\n  {entry.rule} · {entry.source}", source)))
        return Text("\n").join(rows)
