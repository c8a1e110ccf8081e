"""The Textual wizard; `advisor.tui.app.build_app` makes it. Imported only by `advisor wizard` and tests."""
