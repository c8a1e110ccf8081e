"""Where the memory of one training step goes: a bar per part, drawn against the device's memory.

The recommendation screen sets `memory` and `device_gib`; the bars are drawn
to the widget's width, so a part that takes a third of the GPU fills a third
of the line. The colours are component classes, styled in advisor.tcss.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from ...models import MemoryEstimate

NAME_WIDTH = 22
VALUE_WIDTH = 13  # room for '1,067.71 GiB'


class MemoryBars(Widget):
    COMPONENT_CLASSES = {"memory-bars--used", "memory-bars--free", "memory-bars--over", "memory-bars--total",
                         "memory-bars--device"}

    memory: reactive[Optional[MemoryEstimate]] = reactive(None, layout=True)
    device_gib: reactive[Optional[float]] = reactive(None)

    def render(self) -> Text:
        memory = self.memory
        if memory is None:
            return Text("no training, so no GPU memory needed", style="italic")
        device = self.device_gib
        total = memory.peak_gib + memory.overhead_gib
        scale = max(device or 0.0, total, 1e-9)
        width = max(10, self.size.width - NAME_WIDTH - VALUE_WIDTH)
        rows = [self._row(part.replace("_", " "), gib, scale, width, "memory-bars--used")
                for part, gib in memory.breakdown.items()]
        if memory.overhead_gib:
            rows.append(self._row("CUDA context", memory.overhead_gib, scale, width, "memory-bars--used"))
        over = device is not None and total > device
        rows.append(self._row("total", total, scale, width, "memory-bars--over" if over else "memory-bars--total"))
        if device is not None:
            rows.append(self._row("device memory", device, scale, width, "memory-bars--device"))
        return Text("\n").join(rows)

    def _row(self, name: str, gib: float, scale: float, width: int, component: str) -> Text:
        filled = min(width, round(width * gib / scale))
        if gib > 0:
            filled = max(filled, 1)
        row = Text(f"{name[:NAME_WIDTH - 1]:<{NAME_WIDTH}}")
        row.append("█" * filled, style=self.get_component_rich_style(component))
        row.append("░" * (width - filled), style=self.get_component_rich_style("memory-bars--free"))
        row.append(f"{gib:,.2f} GiB".rjust(VALUE_WIDTH))
        return row
