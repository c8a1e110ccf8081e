"""Widgets the wizard's screens compose; each takes its data as attributes and posts messages up."""
